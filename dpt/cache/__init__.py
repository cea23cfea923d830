"""Caches and safe writes: files appear whole or not at all, and every cache says what it was made from."""
