"""Top-9 scan (ZF Fig. 2): planted strongest images are found, in order; progress, cancellation, cache."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn as nn

from cnnviz.views import visualize as vv
from cnnviz.viz import top9
from cnnviz.viz.top9 import ScanCancelled, TopK, scan

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
PLANTED = [51, 3, 40, 17, 29, 8, 60, 33, 12, 45, 22]  # strongest first


def _dataset():
    rng = np.random.default_rng(0)
    images = rng.integers(110, 140, size=(70, 32, 32, 3), dtype=np.uint8)  # dim noise
    for rank, i in enumerate(PLANTED):
        y, x = (rank * 3) % 24, (rank * 5) % 24
        images[i, y:y + 6, x:x + 6] = 255 - rank * 5  # a bright square, dimmer for later ranks
    return images


def _net():
    net = nn.Sequential(nn.Conv2d(3, 2, 6, bias=False), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.LazyLinear(3))
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].weight[0] = 1.0  # brightness detector: peaks where a whole 6x6 square is covered
        net[0].weight[1] = -1.0
    net(torch.zeros(1, 3, 32, 32))
    return net.eval()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_scan_returns_planted_strongest_images_in_order(precision):
    images = _dataset()
    seen = []
    r = scan(_net(), images, "0", mean=MEAN, std=STD, batch_size=16, precision=precision,
             progress=lambda d, n: seen.append((d, n)))
    assert r.values.shape == (2, 9) and r.map_size == (27, 27) and r.images_seen == 70
    assert r.index[0].tolist() == PLANTED[:9]
    assert np.all(np.diff(r.values[0]) <= 0)
    for rank in range(9):  # the unit that covers the whole planted square
        assert (r.ys[0, rank], r.xs[0, rank]) == ((rank * 3) % 24, (rank * 5) % 24)
    assert seen[-1] == (70, 70) and len(seen) == 5
    # every image counts once per channel: nine distinct images
    assert len(set(r.index[1].tolist())) == 9


def test_scan_stops_at_the_layer():
    net = _net()

    class Boom(nn.Module):
        def forward(self, x):
            raise AssertionError("the forward pass went past the scanned layer")

    net[3] = Boom()
    r = scan(net, _dataset(), "1", mean=MEAN, std=STD, batch_size=32)
    assert r.index[0, 0] == PLANTED[0]


def test_cancel_with_event_and_with_progress():
    images = _dataset()
    ev = threading.Event()
    ev.set()
    with pytest.raises(ScanCancelled):
        scan(_net(), images, "0", mean=MEAN, std=STD, cancel=ev)
    calls = []

    def progress(done, total):
        calls.append(done)
        return False if done >= 32 else None

    with pytest.raises(ScanCancelled, match="32 of 70"):
        scan(_net(), images, "0", mean=MEAN, std=STD, batch_size=16, progress=progress)
    assert calls == [16, 32]


def test_cache_is_written_without_pickle_and_reused(tmp_path, monkeypatch):
    images = _dataset()
    r1 = scan(_net(), images, "0", mean=MEAN, std=STD, cache_dir=tmp_path, model_key="abc")
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    loaded = TopK.load(files[0])  # np.load(allow_pickle=False) inside
    np.testing.assert_array_equal(loaded.index, r1.index)

    def no_model(_m):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(top9, "private_view", no_model)
    r2 = scan(_net(), images, "0", mean=MEAN, std=STD, cache_dir=tmp_path, model_key="abc")
    np.testing.assert_array_equal(r2.values, r1.values)
    with pytest.raises(AssertionError, match="cache"):  # another layer or model is not served from it
        scan(_net(), images, "1", mean=MEAN, std=STD, cache_dir=tmp_path, model_key="abc")
    assert "channel,rank,value,image,y,x" in r1.to_csv()


def test_patches_and_projections_on_a_zoo_model():
    from cnnviz.models import create_model

    torch.manual_seed(0)
    model = create_model("zfnet", num_classes=5, input_size=64).eval()
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, size=(12, 64, 64, 3), dtype=np.uint8)
    r = scan(model, images, "features.pool2", mean=MEAN, std=STD, batch_size=5)
    c = int(np.argmax(r.values[:, 0]))
    fig = top9.patches(model, images, r, c, mean=MEAN, std=STD)
    assert len(fig.patches) == 9 and len(fig.projections) == 9
    for box, patch, proj in zip(fig.boxes, fig.patches, fig.projections, strict=True):
        t, left, b, rgt = box
        assert patch.shape == (b - t, rgt - left, 3) and proj.shape == patch.shape
    img = fig.image(cell=32)
    assert img.dtype == np.uint8 and img.shape[1] > img.shape[0]
    assert fig.same_for_every_image is False  # pool1's and pool2's switches condition the projections
    assert fig.projected_by == "deconvnet" and "ZF Fig. 2" in vv.top9_caption("features.pool2", fig)


def test_without_max_pooling_top9_projects_with_guided_backprop():
    from cnnviz.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=5, input_size=32, stem="tiny").eval()
    images = np.random.default_rng(1).integers(0, 255, size=(12, 32, 32, 3), dtype=np.uint8)
    r = scan(model, images, "layer3", mean=MEAN, std=STD, batch_size=6)
    fig = top9.patches(model, images, r, 0, mean=MEAN, std=STD)
    assert fig.same_for_every_image is True and fig.projected_by == "guided backprop"
    from cnnviz.viz import render
    from cnnviz.viz.deconv import guided_backprop

    i, (y, x), (t, left, b, rgt) = fig.images[0], (int(r.ys[0, 0]), int(r.xs[0, 0])), fig.boxes[0]
    xin = top9.preprocess_batch(images[i:i + 1], MEAN, STD, 32, torch.device("cpu"), 3)
    guided = guided_backprop(model, xin, "layer3", 0, position=(y, x)).image[:, t:b, left:rgt]
    np.testing.assert_array_equal(fig.projections[0], render.to_uint8(guided, "symmetric"))
    assert vv.top9_caption("layer3", fig).startswith("guided backprop projections (left)")
    assert top9.patches(model, images, r, 0, mean=MEAN, std=STD, project=False).same_for_every_image is None


def test_grayscale_models_get_the_luma_like_to_tensor_for():
    from PIL import Image

    from cnnviz.preprocess import to_tensor_for

    img = np.random.default_rng(2).integers(0, 255, size=(1, 64, 64, 3), dtype=np.uint8)
    meta = {"input_size": 64, "mean": [0.4], "std": [0.2], "in_channels": 1}
    ours = top9.preprocess_batch(img, meta["mean"], meta["std"], 64, "cpu", channels=1)
    ref = to_tensor_for(Image.fromarray(img[0]), meta)
    assert ours.shape == ref.shape == (1, 1, 64, 64)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_bf16_scan_agrees_with_fp32_on_a_zoo_model():
    # The fast path (a bf16, channels-last copy; the banded-matmul LRN) must find what float32 finds.
    from cnnviz.models import create_model

    torch.manual_seed(0)
    # Kaiming init (zero biases): activations follow the input (the paper init's bias of 1 flattens them).
    model = create_model("alexnet", num_classes=5, input_size=64, init="kaiming").eval()
    rng = np.random.default_rng(3)
    contrast = np.linspace(0.1, 1.0, 24).reshape(24, 1, 1, 1)  # images differ clearly in how hard they drive units
    images = (128 + contrast * rng.uniform(-127, 127, size=(24, 64, 64, 3))).astype(np.uint8)
    ref = scan(model, images, "features.relu2", mean=MEAN, std=STD, precision="fp32")
    fast = scan(model, images, "features.relu2", mean=MEAN, std=STD, precision="bf16")
    live = ref.values[:, 0] > 1e-3 * ref.values.max()  # channels that fire at all
    assert live.sum() > 100
    np.testing.assert_allclose(fast.values[live, 0], ref.values[live, 0], rtol=0.03)
    # Near-ties may swap; a clear winner (2% ahead of the runner-up in float32) must be found by bf16 too.
    clear = live & (ref.values[:, 0] > 1.02 * ref.values[:, 1])
    assert clear.sum() > 50
    np.testing.assert_array_equal(fast.index[clear, 0], ref.index[clear, 0])


def test_precision_is_part_of_the_cache_key(tmp_path):
    images = _dataset()
    with pytest.raises(ValueError, match="precision"):
        scan(_net(), images, "0", mean=MEAN, std=STD, precision="fp16")
    scan(_net(), images, "0", mean=MEAN, std=STD, cache_dir=tmp_path, model_key="k", precision="fp32")
    scan(_net(), images, "0", mean=MEAN, std=STD, cache_dir=tmp_path, model_key="k", precision="bf16")
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_scan_copy_converts_only_its_own_tensors():
    from cnnviz.models import create_model

    model = create_model("resnet18", num_classes=5, input_size=32).eval()
    before = {k: (v.dtype, v.stride(), v.data_ptr()) for k, v in model.state_dict().items()}
    view = top9.scan_copy(model, torch.bfloat16)
    for k, v in view.state_dict().items():
        if v.is_floating_point():
            assert v.dtype == torch.bfloat16, k
        if v.dim() == 4:
            assert v.is_contiguous(memory_format=torch.channels_last), k
    assert {k: (v.dtype, v.stride(), v.data_ptr()) for k, v in model.state_dict().items()} == before
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        fast = view(x.bfloat16().contiguous(memory_format=torch.channels_last)).float()
        torch.testing.assert_close(fast, model(x), rtol=0.05, atol=0.05)
