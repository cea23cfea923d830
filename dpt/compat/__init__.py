"""The official code at the edge: its parameter names, Dassl-written checkpoints and run folders, read safely."""
