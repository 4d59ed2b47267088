"""``python -m cnnviz.train``: the training worker's command (jobs spawn it; torchrun runs it per GPU).

The worker itself is :mod:`cnnviz.training.worker`; this file only keeps the documented command working.
"""

import logging
import os
import sys

from cnnviz.training.dist import Dist
from cnnviz.training.worker import main

if __name__ == "__main__":
    code = main()
    if Dist.from_env().enabled:
        # A torchrun rank leaves without the interpreter's teardown. With gloo (torch 2.14), about one two-rank
        # run in twenty aborted there ("terminate called without an active exception", SIGABRT, no Python
        # frame) after status.json said done and the process group was destroyed, and torchrun then reported
        # the whole run failed. Everything that matters is on disk by now; flush what is buffered and go.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 0)
    sys.exit(code)
