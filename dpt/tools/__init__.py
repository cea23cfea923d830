"""Thin command-line entry points (``dpt-*`` console scripts and ``python -m dpt.tools.*``): each parses flags,
calls the package, and follows the one error contract of ``dpt.errors.cli_main``."""
