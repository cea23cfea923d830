"""Use a trained model: the export file format (export.py), run folders as trainers (run.py), the Classifier."""
