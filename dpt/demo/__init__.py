"""Offline stand-ins for real data and weights: synthetic datasets in real on-disk formats and a tiny random CLIP."""
