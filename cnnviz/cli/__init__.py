"""Command groups of ``python -m cnnviz`` (one module each, see ``cnnviz/__main__.py``)."""
