"""CoOp-compatible entry point: `python train.py --root ... --trainer DPT --config-file ... [KEY VALUE ...]`."""
import sys

from dpt.train import main

if __name__ == "__main__":
    sys.exit(main())
