"""``python -m cnnviz.train``: the training worker's command (jobs spawn it; torchrun runs it per GPU).

The worker itself is :mod:`cnnviz.training.worker`; this file only keeps the documented command working.
"""

import sys

from cnnviz.training.worker import main

if __name__ == "__main__":
    sys.exit(main())
