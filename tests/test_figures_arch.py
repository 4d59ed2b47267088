"""cnnviz.views.architectures: the Architectures page's figures and data, checked on real tables (no fakes)."""

from __future__ import annotations

import re

import pytest

import cnnviz
from cnnviz.summary import layer_table
from cnnviz.views import architectures as fa


@pytest.fixture(scope="module")
def vgg16():
    return layer_table("vgg16", (3, 224, 224))


def test_input_shape_follows_the_model():
    assert fa.input_shape("vgg16") == (3, 224, 224)
    assert fa.input_shape("alexnet") == (3, 227, 227)
    assert fa.input_shape("lenet5") == (1, 32, 32)  # the paper's greyscale digits
    assert fa.input_shape("lenet5", 64) == (3, 64, 64)  # Tiny ImageNet is RGB (the card says so)
    with pytest.raises(cnnviz.models.InputSizeError):
        fa.input_shape("alexnet", 8)


def test_display_frame_and_totals(vgg16):
    frame = fa.display_frame(vgg16).set_index("layer")
    assert frame.loc["features.0", "output"] == "64x224x224"
    assert frame.loc["features.0", "kernel"] == "3" and frame.loc["features.0", "padding"] == "1"
    assert frame["params"].sum() == 138_357_544
    totals = fa.totals(vgg16, batch_size=32)
    assert totals["Parameters"] == ("138M", "138,357,544 parameters")
    assert "Training, batch 32" in totals
    assert fa.exact_totals(vgg16).startswith("Exactly 138,357,544 parameters")


def test_highlights_answer_where_parameters_and_memory_go(vgg16):
    params, memory, macs = fa.highlights(vgg16)
    assert "`classifier.0`" in params and "74%" in params  # 102.8M of 138.4M in VGG's first FC layer
    assert "`features.0`" in memory or "`features.2`" in memory  # the first 224x224x64 convolutions
    assert "MACs" in macs


def test_writeup_notes_only_for_their_architecture(vgg16):
    notes = fa.writeup_notes("vgg16", vgg16)
    assert len(notes) == 1 and "24,000,000" in notes[0] and "15,237,608" in notes[0]
    assert fa.writeup_notes("resnet18", layer_table("resnet18", (3, 224, 224))) == []


def test_layer_chart_and_receptive_field_chart(vgg16):
    fig = fa.layer_chart(vgg16, "params")
    xs = [x for trace in fig.data for x in trace.x]
    assert "classifier.0" in xs and "features.1" not in xs  # layers without parameters are left out
    assert fig.layout.title.text == "Where do the parameters live?"
    g = layer_table("googlenet", (3, 224, 224))
    rf = fa.receptive_field_chart(g)
    names = set(rf.data[1].x)
    assert not any(n.startswith("aux") for n in names)  # auxiliary heads are training-only
    assert max(rf.data[0].y) == max(r.rf for r in g.rows if not r.train_only)


def test_block_diagram_collapses_repeats_and_keeps_branches(vgg16):
    dot = fa.block_diagram(vgg16)
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert "features.10 … features.14 (× 3)" in dot  # conv3-256 x 3
    assert "classifier.0" in dot and "103M params" in dot
    r50 = fa.block_diagram(layer_table("resnet50", (3, 224, 224)))
    assert "× 5" in r50 and "shortcut (conv 1x1/2, 1024" in r50  # layer3: 1 projection block + 5 identical
    g = fa.block_diagram(layer_table("googlenet", (3, 224, 224)))
    assert len(re.findall(r"training only", g)) == 2  # aux1, aux2 as dashed side branches
    assert "conv 1x1, 16\\nconv 5x5, 32" in g  # inception3a's 5x5 branch with its 1x1 reduction
    # Every node is reached from the input: edges chain the main path.
    nodes = set(re.findall(r"^\s+(n\d+) \[", g, re.M))
    targets = set(re.findall(r"-> (n\d+)", g))
    assert nodes == targets


def test_compare_frame_and_accuracy_chart():
    entries = [(cnnviz.get_card(a), layer_table(a, fa.input_shape(a))) for a in ("lenet5", "alexnet", "vgg16")]
    frame = fa.compare_frame(entries).set_index("architecture")
    assert frame.loc[cnnviz.get_card("vgg16").display_name, "params"] == 138_357_544
    fig = fa.accuracy_vs_macs_chart(entries, "top1")
    assert cnnviz.get_card("lenet5").display_name not in fig.data[0].text  # MNIST, not ImageNet
    alex = cnnviz.get_card("alexnet")
    i = list(fig.data[0].text).index(alex.display_name)
    assert fig.data[0].y[i] == pytest.approx(100 - alex.figures.top1_error)


def test_accuracy_chart_names_every_family_it_leaves_out_and_reads_its_log_axis():
    """Issue 11: the accuracy-vs-MACs chart dropped NiN silently and its log axis read "6 7 8 9 1 2". Every
    architecture not plotted is named under the chart with the reason; ticks are 1-2-5 labelled in M/G."""
    archs = ("lenet5", "alexnet", "nin", "googlenet", "vgg16", "resnet18")
    entries = [(cnnviz.get_card(a), layer_table(a, fa.input_shape(a))) for a in archs]
    fig = fa.accuracy_vs_macs_chart(entries, "top1")
    plotted = set(fig.data[0].text)
    note = " ".join(a.text for a in fig.layout.annotations).replace("<br>", " ")
    for arch in archs:
        name = cnnviz.get_card(arch).display_name
        assert (name in plotted) != (name in note), arch  # drawn, or named as left out: never silently dropped
    assert "CIFAR-10" in note and "MNIST" in note and "no top-1 error" in note  # NiN, LeNet-5, GoogLeNet
    ticks = list(fig.layout.xaxis.ticktext)
    assert ticks and all(t[-1] in "KMG" and t[:-1].replace(".", "").isdigit() for t in ticks), ticks
    assert "1G" in ticks and "10G" in ticks  # AlexNet's 0.7G ... VGG-16's 15.5G
    macs = [t.totals["macs"] for c, t in entries if c.display_name in plotted]
    assert min(fig.layout.xaxis.tickvals) <= min(macs) and max(fig.layout.xaxis.tickvals) >= max(macs)


def test_accuracy_chart_keeps_close_names_apart():
    """VGG-11 to VGG-19 with and without batch norm sit within a few points and 2x in MACs: with one rule for
    every label ("top center") their names were drawn on each other. Names now go beside, above or below
    their bubbles, wherever they cover nothing else, and may reach past the axes (cliponaxis off)."""
    from cnnviz.views.charts import place_labels

    archs = ("vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")
    entries = [(cnnviz.get_card(a), layer_table(a, fa.input_shape(a))) for a in archs]
    fig = fa.accuracy_vs_macs_chart(entries, "top5")
    places = list(fig.data[0].textposition)
    assert len(places) == len(fig.data[0].text) and len(set(places)) > 1, places
    assert fig.data[0].cliponaxis is False
    assert place_labels([], [], [], []) == []  # nothing plotted: nothing to place
