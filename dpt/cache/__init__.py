"""Caches and safe writes: files appear whole or not at all, and every cache says what it was made from.

``atomic`` (the write helpers and the one temporary naming scheme), ``digest`` (the one source digest) and
``kinds`` (the table of cache kinds that the writers and ``dpt-cache`` share).
"""
