"""The CNN zoo: one module per family, each registering its architectures (see ``registry.py``)."""

# Importing a family registers it. Order = order of list_models() (roughly the history of the field).
from cnnviz.models import alexnet, googlenet, lenet, nin, resnet, vgg, zfnet  # noqa: E402,F401,I001
from cnnviz.models.registry import (
    InputSizeError,
    ModelCard,
    PaperFigures,
    create_model,
    get_card,
    list_models,
    register_model,
)

__all__ = [
    "InputSizeError",
    "ModelCard",
    "PaperFigures",
    "create_model",
    "get_card",
    "list_models",
    "register_model",
]
