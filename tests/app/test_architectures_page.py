"""The Architectures page in Streamlit's AppTest: real tables (no fakes), the classic figures a reader checks,
write-up notes, clean errors for inputs an architecture cannot take, and the compare view."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import cnnviz
from cnnviz.summary import human

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "architectures.py")


def _run(at: AppTest) -> AppTest:
    at.run(timeout=180)
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture(scope="module")
def page() -> AppTest:
    """One app session shared by the tests below (tables are cached like in the real app)."""
    return _run(AppTest.from_file(PAGE, default_timeout=180))


def _pick(at: AppTest, arch: str, mode: str | None = None) -> AppTest:
    at.selectbox(key="arch_name").set_value(arch)
    radio = at.radio(key="arch_mode")
    radio.set_value(mode or radio.options[0])
    return _run(at)


def _layers(at: AppTest):
    return at.dataframe[0].value.set_index("layer")


def _metric_help(at: AppTest, label: str) -> str:
    return next(m.proto.help for m in at.metric if m.label.startswith(label))


def _charts(at: AppTest) -> dict[str, dict]:
    return {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def test_vgg16_is_the_default_and_matches_the_classic_table(page):
    at = _pick(page, "vgg16")
    assert not at.error
    assert _metric_help(at, "Parameters") == "138,357,544 parameters"
    rows = _layers(at)
    assert rows.loc["features.0", "activations"] == 224 * 224 * 64  # CS231n's "224*224*64 = 3.2M"
    assert rows.loc["features.0", "output"] == "64x224x224"
    assert rows.loc["classifier.0", "params"] == 7 * 7 * 512 * 4096 + 4096  # where the parameters live
    captions = " ".join(c.value for c in at.caption)
    assert "MACs are multiply-accumulates" in captions and "1 MAC = 2 FLOPs" in captions
    assert "Exactly 138,357,544 parameters" in captions
    # The CS231n "TOTAL memory: 24M" note with the true sum of its rows.
    notes = " ".join(i.value for i in at.info)
    assert "24,000,000" in notes and "15,237,608" in notes
    assert "classifier.0" in " ".join(m.value for m in at.markdown)  # "Parameters: classifier.0 holds 74%"


def _open_tab(at: AppTest, key: str, label: str) -> AppTest:
    at.session_state[key] = label  # what a click on the tab does (lazy tabs: only the open one is drawn)
    return _run(at)


def test_charts_diagram_and_downloads_render(page):
    at = _pick(page, "vgg16")
    titles = []
    for label in ("Parameters", "Activation memory", "MACs", "Receptive field"):
        charts = _charts(_open_tab(at, "arch_charts", label))
        assert len(charts) == 1, label
        titles.append(next(iter(charts.values()))["layout"]["title"]["text"])
    assert titles[:2] == ["Where do the parameters live?", "Where does the memory go?"]
    assert "Receptive field" in titles[3]
    _open_tab(at, "arch_charts", "Block diagram")
    dot = at.get("graphviz_chart")[0].proto.spec
    assert dot.startswith("digraph") and "classifier.0" in dot and "conv 3x3/1, 64" in dot
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download CSV", "Download Markdown"]
    _open_tab(at, "arch_charts", "Parameters")


def test_dtype_and_batch_change_the_memory(page):
    at = _pick(page, "vgg16")
    at.selectbox(key="arch_dtype").set_value("float16")
    at.number_input(key="arch_batch").set_value(2)
    _run(at)
    assert _metric_help(at, "Parameter memory") == f"{138_357_544 * 2:,} bytes in float16"
    assert _layers(at).loc["features.0", "activation memory"] == 224 * 224 * 64 * 2
    assert any(m.label == "Training, batch 2" for m in at.metric)
    at.selectbox(key="arch_dtype").set_value("float32")
    _run(at)


def test_lenet5_partial_c3_and_the_2416_note(page):
    at = _pick(page, "lenet5")
    rows = _layers(at)
    c1, c3 = (rows[rows.index.str.endswith(n)].iloc[0] for n in ("c1", "c3"))
    assert (c1["params"], c1["connections"], c1["output"]) == (156, 122_304, "6x28x28")
    assert (c3["params"], c3["connections"]) == (1_516, 151_600)
    notes = " ".join(i.value for i in at.info)
    assert "2,416" in notes and "1,516" in notes
    # The 'modern' variant has a full C3: the write-ups' 2,416.
    at.selectbox(key="arch_lenet5_variant").set_value("modern")
    _run(at)
    rows = _layers(at)
    assert rows[rows.index.str.endswith("c3")].iloc[0]["params"] == 2_416
    at.selectbox(key="arch_lenet5_variant").set_value("paper")
    _run(at)


def test_alexnet_shapes_and_the_connections_note(page):
    at = _pick(page, "alexnet")
    outputs = [o for o in _layers(at)["output"] if o]
    for shape in ("96x55x55", "96x27x27", "256x27x27", "256x13x13", "384x13x13", "256x6x6", "4096", "1000"):
        assert shape in outputs, (shape, outputs)
    notes = " ".join(i.value for i in at.info)
    assert "105,705,600" in notes and "34,944" in notes


def test_tiny_imagenet_input_uses_200_classes(page):
    at = _pick(page, "vgg16", "64x64 (Tiny ImageNet)")
    assert not at.error
    rows = _layers(at)
    assert rows.iloc[0]["input"] == "3x64x64"
    assert rows.iloc[-1]["output"] == "200"
    at = _pick(page, "lenet5", "64x64 (Tiny ImageNet)")  # RGB at 64x64: C1 has 6 x (3x5x5 + 1) parameters
    assert not at.error
    rows = _layers(at)
    assert rows.iloc[0]["input"] == "3x64x64" and rows.iloc[0]["params"] == 456
    _pick(page, "vgg16")


def test_an_input_too_small_is_a_message_not_a_traceback(page):
    at = _pick(page, "alexnet", "custom")
    at.number_input(key="arch_side").set_value(8)
    _run(at)  # asserts no exception element
    assert at.error, "expected a clear error message"
    assert "at least" in at.error[0].value and "Traceback" not in at.error[0].value
    assert not at.dataframe  # no layer table
    _pick(page, "vgg16")


def test_every_architecture_renders(page):
    for arch in cnnviz.list_models():
        at = _pick(page, arch)
        assert not at.error, (arch, [e.value for e in at.error])
        rows = _layers(at)
        assert len(rows) > 5, arch
        # the headline counts the model at inference: training-only rows (GoogLeNet's aux heads) apart
        inference = rows[~rows["training only"]] if "training only" in rows else rows
        assert inference["params"].sum() == int(_metric_help(at, "Parameters").split()[0].replace(",", "")), arch
        assert at.get("plotly_chart"), arch
    _open_tab(page, "arch_charts", "Block diagram")
    for arch in cnnviz.list_models():
        at = _pick(page, arch)
        assert not at.error and at.get("graphviz_chart"), arch
    _open_tab(page, "arch_charts", "Parameters")
    _pick(page, "vgg16")


def test_compare_view_totals_and_accuracy_chart(page):
    at = _open_tab(page, "arch_view", "Compare architectures")
    at.multiselect(key="cmp_names").set_value(["alexnet", "vgg16", "resnet50", "lenet5"])
    _run(at)
    table = at.dataframe[0].value.set_index("architecture")
    vgg = cnnviz.get_card("vgg16").display_name
    assert table.loc[vgg, "params"] == 138_357_544
    assert table.loc[cnnviz.get_card("alexnet").display_name, "input"] == "3x227x227"
    chart = _charts(at)[next(k for k in _charts(at) if "cmp_chart" in k)]
    names = chart["data"][0]["text"]
    assert vgg in names and cnnviz.get_card("lenet5").display_name not in names  # MNIST is not ImageNet
    assert "bubble size: parameters" in chart["layout"]["title"]["text"]
    # counts written as the metric cards and the chart's axis write them (K/M/G), not Streamlit's "15B" and "6.2M";
    # the papers' errors as the papers wrote them, "-" where a paper gives none
    import pyarrow as pa

    shown = pa.ipc.open_stream(at.dataframe[0].proto.arrow_data.styler.display_values).read_all().to_pandas()
    shown = shown.set_index("architecture")
    assert shown.loc[vgg, "MACs / image"] == human(table.loc[vgg, "MACs / image"]) == "15.5G"
    assert shown.loc[vgg, "params"] == "138M" and shown.loc[vgg, "paper top-5 error %"] == "8.8"
    assert shown.loc[cnnviz.get_card("lenet5").display_name, "paper top-5 error %"] == "-"
    at.toggle(key="cmp_tiny").set_value(True)
    _run(at)
    table = at.dataframe[0].value.set_index("architecture")
    assert {vgg, cnnviz.get_card("resnet50").display_name} <= set(table.index)
    assert set(table["input"]) == {"3x64x64"} and set(table["classes"]) == {200}
    assert not at.error  # LeNet-5 too: RGB at 64x64 (its card says so)
    assert table.loc[cnnviz.get_card("lenet5").display_name, "params"] > 60_000
    at.toggle(key="cmp_tiny").set_value(False)
    _open_tab(at, "arch_view", "One architecture")


def test_one_parameter_count_per_model_in_every_view(page):
    """Issue 11: GoogLeNet showed 10.9M (headline), 13M (compare), 6.8M/7.0M (card) and 6.2M (Compare page).
    One function counts it for the input and classes in question; each view says where the training-only
    auxiliary classifiers are (not) counted."""
    from cnnviz.summary import parameter_count

    tiny = parameter_count("googlenet", (3, 64, 64), 200)
    paper = parameter_count("googlenet")
    assert (tiny.inference, tiny.training_only, paper.inference) == (6_178_552, 4_739_728, 6_998_552)
    at = _pick(page, "googlenet", "64x64 (Tiny ImageNet)")
    headline = _metric_help(at, "Parameters")
    assert headline.startswith("6,178,552 parameters at inference") and "auxiliary classifiers add 4,739,728" \
        in headline, headline
    assert next(m.value for m in at.metric if m.label == "Parameters") == "6.18M"
    card = " ".join(m.value for m in at.markdown)
    assert "Our count at 3x64x64, 200 classes:** 6,178,552 parameters at inference" in card
    assert "Exactly 6,178,552 parameters at inference" in " ".join(c.value for c in at.caption)
    at = _open_tab(at, "arch_view", "Compare architectures")
    at.multiselect(key="cmp_names").set_value(["googlenet", "vgg16"])
    at.toggle(key="cmp_tiny").set_value(True)
    _run(at)
    row = at.dataframe[0].value.set_index("architecture").loc[cnnviz.get_card("googlenet").display_name]
    assert (row["params"], row["training-only params"]) == (6_178_552, 4_739_728)
    at.toggle(key="cmp_tiny").set_value(False)
    _run(at)
    row = at.dataframe[0].value.set_index("architecture").loc[cnnviz.get_card("googlenet").display_name]
    assert (row["params"], row["training-only params"]) == (6_998_552, 6_379_728)
    _open_tab(at, "arch_view", "One architecture")
    _pick(page, "vgg16")
