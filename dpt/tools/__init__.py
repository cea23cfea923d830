"""Thin command-line entry points (``dpt-*`` console scripts): each parses flags and calls the package."""
