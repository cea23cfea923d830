"""Use a trained model: run folders and their part checkpoints (run_files.py), run folders as trainers (run.py),
the export file format (export.py), the Classifier."""
