"""Preprocessing follows the checkpoint: size, normalisation and channel count from its metadata."""

import torch
from PIL import Image

from cnnviz.checkpoint import build_meta
from cnnviz.models import create_model
from cnnviz.preprocess import to_image, to_tensor, to_tensor_for


def test_a_paper_lenet_checkpoint_gets_one_grayscale_channel():
    model = create_model("lenet5")  # the paper's 32x32, 1-channel network
    meta = build_meta(model, mean=(0.1307,), std=(0.3081,))
    assert meta["in_channels"] == 1
    img = Image.new("RGB", (50, 40), (255, 255, 255))
    x = to_tensor_for(img, meta)
    assert x.shape == (1, 1, 32, 32)
    assert torch.allclose(x, torch.full_like(x, (1.0 - 0.1307) / 0.3081), atol=1e-4)
    model.eval()(x)  # the network accepts it


def test_rgb_models_get_three_normalised_channels_that_round_trip():
    model = create_model("alexnet", num_classes=200, input_size=64)
    meta = build_meta(model, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
    assert meta["in_channels"] == 3
    img = Image.new("RGB", (128, 96), (10, 120, 250))
    x = to_tensor_for(img, meta)
    assert x.shape == (1, 3, 64, 64)
    back = to_image(x, meta["mean"], meta["std"])
    assert back.size == (64, 64) and back.getpixel((5, 5)) == (10, 120, 250)


def test_resize_keeps_the_centre_square():
    img = Image.new("RGB", (200, 100), (0, 0, 0))
    img.paste((255, 0, 0), (0, 0, 40, 100))  # a red band on the left that the centre crop cuts away
    x = to_tensor(img, 64, (0, 0, 0), (1, 1, 1))
    assert float(x[0, 0].max()) < 0.05
