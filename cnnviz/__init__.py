"""cnnviz: explore, train and look inside the classic CNNs.

The library is UI-free: it never imports streamlit (a test enforces it). Every page of the dashboard is a
thin layer over calls into this package, and everything a page can do, the CLI (`python -m cnnviz`) can too.
"""

__version__ = "0.1.0"

from cnnviz.models import create_model, get_card, list_models  # noqa: E402

__all__ = ["__version__", "create_model", "get_card", "list_models"]
