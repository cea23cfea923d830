"""Shared fixtures: tiny random CLIPs (OpenAI and open_clip) saved to files, and synthetic datasets in real on-disk
formats."""
import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from fixtures_clip import *  # noqa: E402,F401,F403
from fixtures_data import *  # noqa: E402,F401,F403
from fixtures_open_clip import *  # noqa: E402,F401,F403
