"""Fixtures for synthetic datasets (filled in by the data work)."""
