"""Training: the configuration, the loop, the worker process, run folders and background jobs.

Nothing is imported here, so ``import cnnviz.training.runs`` (a page reading run folders) does not load the
loop, and the worker loads only what it runs.
"""
