"""Fixtures for tiny random CLIP models (filled in by the modeling work)."""
