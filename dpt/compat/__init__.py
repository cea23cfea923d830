"""The official code at the edge: Dassl-written checkpoints read safely (restricted unpickler, ``weights.py``) and
the table mechanism by which each trainer declares the official names of its parts (``names.py``)."""
