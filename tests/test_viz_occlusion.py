"""Occlusion sensitivity (ZF Fig. 7): occluding the planted object lowers its class probability."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from cnnviz.viz.occlusion import activation_occlusion, occluded_batch, occlusion, positions


class BrightSquareDetector(nn.Module):
    """Class 1 = "there is a bright square": conv of summed brightness, global max, linear."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 2, 4, bias=False), nn.ReLU())
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.features[0].weight.zero_()
            self.features[0].weight[0] = 1.0 / 48  # mean brightness over a 4x4 window
            self.features[0].weight[1] = -1.0 / 48
            self.fc.weight.copy_(torch.tensor([[-4.0, 0.0], [4.0, 0.0]]))
            self.fc.bias.copy_(torch.tensor([2.0, -2.0]))

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def _image_with_object(top=24, left=32, size=8):
    x = torch.zeros(1, 3, 64, 64)  # 0 = the dataset mean after normalisation: a grey image
    x[:, :, top:top + size, left:left + size] = 2.0
    return x


def test_occluding_the_object_lowers_its_class_probability():
    net = BrightSquareDetector().eval()
    x = _image_with_object()
    r = occlusion(net, x, target=1, size=8, stride=4, layer="features.1", channel=0)
    assert r.prob.shape == (15, 15) and r.top_class.shape == (15, 15)
    assert r.base_prob > 0.9
    i, j = np.unravel_index(np.argmin(r.prob), r.prob.shape)
    assert (i * 4, j * 4) == (24, 32)  # the square exactly over the object
    assert r.prob[i, j] < 0.2 < r.base_prob - 0.5
    assert r.top_class[i, j] == 0 and r.top_class[0, 0] == 1
    assert abs(r.prob[0, 0] - r.base_prob) < 1e-5  # far from the object nothing changes
    # (a) the feature map's total activation drops most where the object is covered
    assert np.unravel_index(np.argmin(r.activation), r.activation.shape) == (i, j)
    assert r.activation[i, j] < r.base_activation
    np.testing.assert_allclose(activation_occlusion(net, x, "features.1", 0, size=8, stride=4), r.activation,
                               rtol=1e-5)


def test_matches_a_direct_loop_and_chunking_does_not_matter():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 5)).eval()
    x = torch.randn(1, 3, 20, 20)
    r = occlusion(net, x, target=3, size=6, stride=5, batch_size=4)
    ys, xs = positions(20, 20, 6, 5)
    assert ys == [0, 5, 10] and xs == [0, 5, 10]
    for a, y in enumerate(ys):
        for b, xx in enumerate(xs):
            xo = x.clone()
            xo[:, :, y:y + 6, xx:xx + 6] = 0
            with torch.no_grad():
                p = torch.softmax(net(xo), 1)[0]
            assert r.prob[a, b] == pytest.approx(float(p[3]), abs=1e-5)
            assert r.top_class[a, b] == int(p.argmax())
    r2 = occlusion(net, x, target=3, size=6, stride=5, batch_size=1000)
    np.testing.assert_allclose(r.prob, r2.prob, atol=1e-6)


def test_occluded_batch_and_bad_sizes():
    x = torch.ones(1, 1, 4, 4)
    b = occluded_batch(x, [0, 2], [0, 2], 2)
    assert b.shape == (4, 1, 4, 4) and b[3, 0, 2:, 2:].sum() == 0 and b[3].sum() == 12
    with pytest.raises(ValueError, match="does not fit"):
        positions(4, 4, 5, 1)
    net = BrightSquareDetector().eval()
    with pytest.raises(ValueError, match="class 7"):
        occlusion(net, _image_with_object(), target=7)


def test_to_pixels_spreads_the_map_over_the_image():
    net = BrightSquareDetector().eval()
    r = occlusion(net, _image_with_object(), target=1, size=8, stride=8)
    px = r.to_pixels(r.prob, (64, 64))
    assert px.shape == (64, 64)
    assert px[28, 36] == pytest.approx(r.prob[3, 4])


def _contains_rows(img: np.ndarray, row: np.ndarray) -> bool:
    """True when some row of ``img`` holds ``row`` (W x 3) exactly, at any horizontal offset."""
    w = row.shape[0]
    for y in range(img.shape[0]):
        for x0 in range(img.shape[1] - w + 1):
            if img[y, x0, 0] == row[0, 0] and np.array_equal(img[y, x0:x0 + w], row):
                return True
    return False


def test_occlusion_figure_has_colour_bars_and_a_class_legend():
    """ZF Fig. 7 with what its colours mean: (a) and (b) carry colour bars, (c) a legend of its classes."""
    from cnnviz.views.visualize import occlusion_figure
    from cnnviz.viz import render
    from cnnviz.viz.session import Subject

    net = BrightSquareDetector().eval()
    res = occlusion(net, _image_with_object(), 1, size=8, stride=4, layer="features", channel=0)
    subject = Subject(net, {"class_names": ["grey", "bright square"], "num_classes": 2}, "detector", None)
    fig = occlusion_figure(np.zeros((64, 64, 3), np.uint8), res, subject, cell=192)
    for cmap in ("viridis", "magma"):  # the bars' ramps, exactly as render.colorbar draws them
        ramp = render.colormap(np.linspace(0.0, 1.0, 192 - 4)[None, :], cmap, 0.0, 1.0)[0]
        assert _contains_rows(fig, ramp), cmap
    colors = render.categorical_colors(res.top_class)
    below_maps = fig[2 * 14 + 192 + 8:]  # under the titles and the maps: bars, text and the legend
    for rgb in colors.values():  # every class shown in (c) has its swatch in the legend
        assert (below_maps == np.array(rgb, np.uint8)).all(axis=2).sum() >= 64, rgb
