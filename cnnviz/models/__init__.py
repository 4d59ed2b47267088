"""The CNN zoo: one module per family, each registering its architectures (see ``registry.py``)."""

# Importing a family registers it (list_models() orders them by the paper's year).
from cnnviz.models import alexnet, googlenet, lenet, nin, resnet, vgg, zfnet  # noqa: E402,F401,I001
from cnnviz.models.declared import FeatureInfo, VariantOption
from cnnviz.models.meta import meta_model
from cnnviz.models.registry import (
    InputSizeError,
    ModelCard,
    PaperFigures,
    create_model,
    get_card,
    list_models,
    parse_variant,
    register_model,
)

__all__ = [
    "FeatureInfo",
    "InputSizeError",
    "ModelCard",
    "PaperFigures",
    "VariantOption",
    "create_model",
    "get_card",
    "list_models",
    "meta_model",
    "parse_variant",
    "register_model",
]
