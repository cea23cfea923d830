"""Use a trained model: the export file format (export.py), run folders as trainers (run.py), the Classifier."""
import dpt.engine  # noqa: F401  (first: dpt.compat.weights imports dpt.engine.checkpoint, whose package imports it)
from dpt.inference import classifier, export, run  # noqa: F401,E402
