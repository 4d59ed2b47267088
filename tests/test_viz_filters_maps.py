"""Filters (grids, per-channel view, statistics), feature maps sorted by strength, rendering helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from cnnviz.viz import filter_channels, filter_grid, filter_stats, list_snapshots
from cnnviz.viz.filters import compare_first_layers
from cnnviz.viz.maps import feature_maps
from cnnviz.viz.render import grid, normalise, npy_bytes, png_bytes


def _net():
    net = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 4, 3), nn.ReLU())
    with torch.no_grad():
        torch.manual_seed(0)
        for m in net:
            if isinstance(m, nn.Conv2d):
                m.weight.normal_()
        net[0].weight[2].zero_()  # dead
        net[0].weight[4] = 0.7  # constant: measures brightness only
        net[0].bias.zero_()
    return net.eval()


def test_filter_stats_flag_dead_and_constant_filters():
    s = filter_stats(_net())
    assert list(s.columns[:2]) == ["filter", "norm"]
    assert s.dead.tolist() == [False, False, True, False, False, False]
    assert s.near_constant.tolist() == [False, False, False, False, True, False]
    assert s.norm[4] == pytest.approx(0.7 * np.sqrt(27))


def test_filter_grid_per_filter_normalisation_and_channels():
    net = _net()
    fig = filter_grid(net, normalise="per_filter", cell=9, ncols=6)
    assert fig.image.dtype == np.uint8 and fig.image.shape[2] == 3 and fig.layer == "0"
    assert "own min..max" in fig.caption
    # per-filter: every non-constant filter spans the full 0..255 range inside its tile
    tile = fig.image[2:11, 2:11]
    assert tile.min() == 0 and tile.max() == 255
    g = filter_grid(net, normalise="global", cell=9, ncols=6)
    assert not np.array_equal(g.image, fig.image)
    ch = filter_channels(net, "2", filters=[0, 1], cell=3)
    assert ch.image.shape[1] == 6 * (3 + 1) + 1  # one column per input channel
    with pytest.raises(ValueError, match="9 does not exist"):
        filter_channels(net, "2", filters=[9])
    both = compare_first_layers({"a": net, "b": _net()})
    assert set(both) == {"a", "b"}


def test_feature_maps_sorted_by_strength():
    torch.manual_seed(1)
    net = _net()
    x = torch.randn(1, 3, 12, 12)
    fm = feature_maps(net, x, "3")
    with torch.no_grad():
        ref = net(x)[0].numpy()
    np.testing.assert_allclose(fm.maps, ref, atol=1e-6)
    peaks = ref.reshape(4, -1).max(1)
    assert fm.order.tolist() == np.argsort(-peaks, kind="stable").tolist()
    assert fm.table()["max"].is_monotonic_decreasing
    assert fm.grid(cell=8).dtype == np.uint8
    with pytest.raises(ValueError, match="sort"):
        feature_maps(net, x, "3", sort="median")


def test_render_helpers():
    assert normalise(np.array([1.0, 3.0])).tolist() == [0.0, 1.0]
    assert normalise(np.array([-2.0, 1.0]), "symmetric").tolist() == [0.0, 0.75]
    assert normalise(np.ones(3)).tolist() == [0.5] * 3
    g = grid([np.zeros((4, 4), np.uint8)] * 5, ncols=2, pad=1)
    assert g.shape == (3 * 5 + 1, 2 * 5 + 1, 3)
    assert png_bytes(g)[:4] == b"\x89PNG"
    assert np.load(__import__("io").BytesIO(npy_bytes(np.arange(3))), allow_pickle=False).tolist() == [0, 1, 2]


def test_list_snapshots(tmp_path):
    e = tmp_path / "run" / "epochs"
    e.mkdir(parents=True)
    for n in (3, 1, 10):
        (e / f"epoch_{n:03d}.safetensors").write_bytes(b"x")
        (e / f"epoch_{n:03d}.json").write_text("{}")
    (e / "epoch_004.safetensors").write_bytes(b"x")  # no metadata: not listed
    assert [s.epoch for s in list_snapshots(tmp_path / "run")] == [1, 3, 10]
    assert list_snapshots(tmp_path / "nothing") == []


def test_class_index_maps_dataset_classes_to_model_outputs():
    from cnnviz.viz.session import class_index

    meta = {"classes": ["n1", "n2"], "num_classes": 2}
    assert class_index(meta, "n2", 0) == 1 and class_index(meta, "n9", 0) is None
    assert class_index({"classes": None, "num_classes": 3}, "x", 2) == 2
    assert class_index({"classes": None, "num_classes": 3}, "x", 7) is None


def test_unit_picker_figure_and_reading_a_click_back():
    """The clickable feature map: one marker per unit carrying its (row, column), the current unit outlined,
    and a click event (Streamlit's selection dict) read back as that unit; nonsense and stale clicks are None."""
    from cnnviz.viz.maps import unit_from_selection, unit_picker

    fmap = np.arange(6 * 9, dtype=np.float32).reshape(6, 9)
    fig = unit_picker(fmap, (4, 7), "conv[3]")
    heat, markers = fig.data
    assert heat.type == "heatmap" and np.array_equal(np.asarray(heat.z), fmap)
    assert len(markers.x) == 6 * 9
    k = 4 * 9 + 7
    assert (markers.y[k], markers.x[k]) == (4, 7) and tuple(markers.customdata[k]) == (4, 7)
    (outline,) = fig.layout.shapes
    assert (outline.x0, outline.x1, outline.y0, outline.y1) == (6.5, 7.5, 3.5, 4.5)
    assert tuple(fig.layout.yaxis.range) == (5.5, -0.5)  # row 0 on top, the plot area is exactly the map

    click = {"selection": {"points": [{"x": 7, "y": 4, "curve_number": 1, "point_index": k}]}}
    assert unit_from_selection(click, (6, 9)) == (4, 7)
    assert unit_from_selection(click) == (4, 7)
    assert unit_from_selection(click, (4, 4)) is None  # from a bigger map: not a unit of this one
    assert unit_from_selection({"selection": {"points": []}}, (6, 9)) is None
    assert unit_from_selection({"selection": {"points": [{"x": "a", "y": None}]}}, (6, 9)) is None
    assert unit_from_selection(None) is None


def test_default_layer_box_text_and_lrn_caption():
    """Visualize opens on a layer of at least 8x8; boxes are written (x0, y0, x1, y1); the deconvnet caption
    mentions LRN only where the model has one and says when a receptive field covers the whole image."""
    from cnnviz.views import visualize as vv
    from cnnviz.viz import session
    from cnnviz.viz.deconv import deconvnet

    r18 = session.random_subject("resnet18", num_classes=10)
    assert session.default_layer(r18) == "layer2"
    assert session.default_layer(session.random_subject("vgg11", num_classes=10)) == "features.14"
    assert vv.box_text((15, 0, 58, 34)) == "(x0, y0, x1, y1) = (0, 15, 34, 58)"
    assert vv.covers_whole_image((0, 0, 64, 64), (3, 64, 64))
    assert not vv.covers_whole_image((0, 0, 64, 40), (3, 64, 64))
    x, _ = session.prepare(session.demo_image(), r18.meta)
    p = deconvnet(r18.model, x, "layer4", 0)
    caption = vv.deconv_caption(r18, p, (0, 0, 64, 64))
    assert "LRN" not in caption and "covers the whole image" in caption and "random initialisation" in caption
    alex = session.random_subject("alexnet", num_classes=10)
    assert "LRN passes" in vv.deconv_caption(alex, p, (0, 0, 10, 10))


def test_deconv_figure_says_when_the_projection_is_the_same_for_every_image():
    """Tiny-stem ResNet-18 (no max-pool): the figure adds guided backprop of the same unit and the caption says
    the deconvnet picture does not come from the image; ZFNet's conv2 (switches below it) stays ZF's two panels
    with no such sentence; a first-layer unit (its filter either way) gets the sentence but no third panel."""
    from cnnviz.models import create_model
    from cnnviz.views import visualize as vv
    from cnnviz.viz import session
    from cnnviz.viz.session import Subject

    torch.manual_seed(0)
    r18 = Subject(create_model("resnet18", num_classes=10, stem="tiny").eval(), session.random_subject(
        "resnet18", num_classes=10).meta, "r18 tiny", None)
    x, seen = session.prepare(session.demo_image(), r18.meta)
    two = vv.deconv_figure(session.random_subject("zfnet", num_classes=10), x, seen, "features.conv2")
    three = vv.deconv_figure(r18, x, seen, "layer3")
    first = vv.deconv_figure(session.random_subject("zfnet", num_classes=10), x, seen, "features.conv1")
    assert three.projection.same_for_every_image and three.guided is not None
    assert three.guided.position == three.projection.position and three.guided.channel == three.projection.channel
    assert three.image.shape[1] > two.image.shape[1] * 1.4  # a third panel
    caption = three.caption(r18)
    assert "same for every image" in caption and "Guided backprop (right" in caption
    assert two.projection.same_for_every_image is False and two.guided is None
    assert "same for every image" not in two.caption(r18)
    assert first.projection.same_for_every_image and first.guided is None
    assert first.image.shape == two.image.shape
    assert "same for every image" in first.caption(r18) and "Guided backprop" not in first.caption(r18)
    zf = session.random_subject("zfnet", num_classes=10)
    asked = vv.deconv_figure(zf, x, seen, "features.conv2", with_guided=True)  # the toggle: both methods
    assert asked.guided is not None and asked.image.shape[1] == three.image.shape[1]
    assert "Guided backprop (right; Springenberg" in asked.caption(zf) and "same for every image" not in \
        asked.caption(zf)


def test_a_map_that_stays_at_zero_is_a_black_tile_not_grey():
    """Compare's same-image grid showed a flat grey tile nobody could explain: a dead ReLU map, constant, which
    the per-map normalisation turned into mid-grey. Each map on its own scale has black = its lowest."""
    from cnnviz.viz.maps import FeatureMaps

    maps = np.zeros((2, 4, 4), np.float32)
    maps[0, 1, 2] = 3.0  # a live map with one hot unit; map 1 never fires
    grid = FeatureMaps("relu", maps, np.array([3.0, 0.0]), np.array([0, 1]), "max").grid(cell=4)
    tiles = [grid[:, :grid.shape[1] // 2], grid[:, grid.shape[1] // 2:]]
    assert tiles[0].max() == 255 and tiles[1][tiles[1] < 250].max() == 0  # (the grid's white padding aside)


def test_feature_grid_has_a_colour_bar():
    from cnnviz.views import visualize as vv
    from cnnviz.viz import session

    s = session.random_subject("lenet5", num_classes=3)
    x, seen = session.prepare(session.demo_image(), s.meta)
    fm, grid, detail, *_ = vv.feature_figure(s, x, seen, "features.act3")
    assert grid.shape[0] > fm.grid(64).shape[0] + 20  # the bar and its meaning under the maps


def test_fig6_note_only_when_both_sides_are_trained_for_different_lengths():
    from cnnviz.views.visualize import FirstLayer, fig6_training_note

    def side(epochs):
        return FirstLayer(model=None, meta={}, key=(), layer="features.0", image=None, caption="", epochs=epochs)

    assert fig6_training_note([side(1), side(6)]).startswith("Not trained alike: AlexNet had 1 epoch and ZFNet 6.")
    assert fig6_training_note([side(4), side(4)]) is None  # trained alike: nothing to warn about
    assert fig6_training_note([side(None), side(6)]) is None  # a random init already says so in its caption


def test_fig6_says_what_zf_compared_and_what_differs_at_64x64():
    """Trained alike, the two sides get a sentence: ZF changed conv1's size *and* stride; at 64x64 both small stems
    keep stride 1, so only the size differs. Kernels and strides come from the models, smoothness is measured."""
    from cnnviz.models.registry import create_model
    from cnnviz.views.visualize import FirstLayer, fig6_comparison_note
    from cnnviz.viz.filters import first_conv
    from cnnviz.viz.trained import smoothness

    def side(arch, epochs, size=64):
        torch.manual_seed(0)
        model = create_model(arch, num_classes=10, input_size=size)
        return FirstLayer(model=model, meta={"input_size": size}, key=(), layer=first_conv(model), image=None,
                          caption="", epochs=epochs)

    alex, zf = side("alexnet", 10), side("zfnet", 10)
    note = fig6_comparison_note([alex, zf])
    assert "These two see 64x64 images: AlexNet's conv1 is 11x11 at stride 1, ZFNet's 7x7 at stride 1" in note
    assert "only the filter size" in note
    w = zf.model.get_submodule(zf.layer).weight.detach().numpy()
    assert f"{smoothness(w):+.2f} in ZFNet's" in note
    paper = fig6_comparison_note([side("alexnet", 10, 224), side("zfnet", 10, 224)])
    assert "11x11 at stride 4, ZFNet's 7x7 at stride 2" in paper and "strides differ" in paper
    assert fig6_comparison_note([alex, side("zfnet", 3)]) is None  # trained unalike: the other note says so
    assert fig6_comparison_note([side("alexnet", None), zf]) is None  # a random init: nothing to compare
