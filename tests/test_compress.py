"""Compressed checkpoints (cnnviz.compress + cnnviz.checkpoint): int8 per output channel, truncated SVD of
Linear weights, the file format, and every way a damaged file is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from cnnviz.checkpoint import CheckpointError, build_meta, load_checkpoint, save_checkpoint
from cnnviz.compress import (
    FORMAT_VERSION,
    ROUNDTRIP_LOGIT_RTOL,
    CompressionError,
    compress_state_dict,
    compressed_bytes,
    decompress_state_dict,
    default_plan,
    dequantize_rows,
    make_plan,
    plan_for,
    quantize_rows,
    svd_factors,
)
from cnnviz.models import create_model, get_card, list_models

NAMES = list_models()
FC_FAMILIES = {"alexnet", "zfnet"} | {n for n in NAMES if n.startswith("vgg")}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small models, one thread


def _in_channels(model: nn.Module) -> int:
    return next(m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max over images of ||a - b|| / ||b||: the logit error the docstring's tolerance is about."""
    return ((a - b).norm(dim=1) / b.norm(dim=1)).max().item()


def _low_rank_(linear: nn.Linear, rank: int) -> None:
    """Give a Linear a weight of exactly ``rank`` (a trained fc layer's energy sits in few directions)."""
    g = torch.Generator().manual_seed(1)
    a = torch.randn(linear.out_features, rank, generator=g)
    b = torch.randn(rank, linear.in_features, generator=g)
    w = a @ b
    with torch.no_grad():
        linear.weight.copy_(w * (linear.weight.std() / w.std()))


@pytest.mark.parametrize("name", NAMES)
def test_every_architecture_round_trips_through_a_compressed_checkpoint(name, tmp_path):
    """Saved compressed and loaded back, the model has the architecture's exact keys and shapes, and its
    logits on random input stay within ROUNDTRIP_LOGIT_RTOL (5%) of the float32 model's. The FC families
    also run the SVD path (fc6, on a weight of the plan's rank: what SVD keeps exactly)."""
    size = get_card(name).min_input
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, input_size=size).eval()
    if name in FC_FAMILIES:
        fc6_key, fc6 = next((f"{k}.weight", m) for k, m in model.named_modules() if isinstance(m, nn.Linear))
        _low_rank_(fc6, 32)
        plan = make_plan(int8=True, svd_ranks={fc6_key: 32})
    else:
        plan = make_plan(int8=not name.startswith("lenet"))
    save_checkpoint(tmp_path / "c", model, build_meta(model), compression=plan)

    loaded = load_checkpoint(tmp_path / "c").model
    want = model.state_dict()
    got = loaded.state_dict()
    assert list(got) == list(want)
    assert all(got[k].shape == want[k].shape and got[k].dtype == want[k].dtype for k in want)
    kinds = {e["kind"] for e in json.loads((tmp_path / "c.json").read_text())["compression"]["tensors"].values()}
    assert ("int8" in kinds) == plan.int8 and ("svd_int8" in kinds) == bool(plan.svd_ranks)
    x = torch.randn(3, _in_channels(model), size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert _rel(loaded(x), model(x)) < ROUNDTRIP_LOGIT_RTOL


def test_int8_error_is_at_most_half_a_step_per_output_channel():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 8, 3, 3, generator=g) * torch.logspace(-3, 1, 16)[:, None, None, None]  # rows of any scale
    w[3] = 0  # an all-zero channel stays exactly zero
    q, scale = quantize_rows(w)
    assert q.dtype == torch.int8 and q.shape == w.shape and scale.shape == (16,)
    back = dequantize_rows(q, scale)
    bound = w.abs().amax(dim=(1, 2, 3)) / 254  # scale / 2, per output channel
    assert ((back - w).abs().amax(dim=(1, 2, 3)) <= bound * (1 + 1e-5) + 1e-12).all()
    assert (back[3] == 0).all()
    assert q.abs().max() == 127  # the largest value of each row uses the whole range


def test_svd_of_a_known_low_rank_matrix_is_exact():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(60, 5, generator=g) @ torch.randn(5, 40, generator=g)
    left, right = svd_factors(w, 5)
    assert left.shape == (60, 5) and right.shape == (5, 40)
    assert torch.allclose(left @ right, w, atol=1e-4)
    # the factors share the singular values evenly (S^1/2 each), so their rows have comparable scales
    assert torch.allclose(left.norm(dim=0), right.norm(dim=1), rtol=1e-4)
    # and a lower rank is the best approximation: its error is the dropped singular values
    s = torch.linalg.svdvals(w)
    l3, r3 = svd_factors(w, 3)
    assert torch.isclose((w - l3 @ r3).norm(), s[3:].norm(), rtol=1e-3)


def test_svd_int8_round_trip_of_a_linear_stays_close():
    torch.manual_seed(0)
    lin = nn.Linear(300, 200)
    _low_rank_(lin, 20)
    tensors, spec = compress_state_dict(lin.state_dict(), make_plan(int8=True, svd_ranks={"weight": 20}))
    assert set(tensors) == {"weight:left", "weight:left_scale", "weight:right", "weight:right_scale", "bias"}
    assert tensors["weight:left"].dtype == torch.int8 and tensors["bias"].dtype == torch.float16
    assert spec["tensors"]["weight"] == {"shape": [200, 300], "kind": "svd_int8", "rank": 20}
    state = decompress_state_dict(tensors, spec)
    w = lin.weight.detach()
    assert state["weight"].dtype == torch.float32
    assert (state["weight"] - w).norm() / w.norm() < 0.02  # two int8 factors: about 1% of the weight


def test_default_plans_and_their_sizes_fit_the_zoo_budget():
    """The plan each family ships at 200 classes, 64x64, and the file sizes the module docstring states."""
    def plan_and_mib(arch, **variant):
        model = create_model(arch, num_classes=200, input_size=64, **variant)
        plan = default_plan(arch, model)
        return plan, compressed_bytes(model, plan) / 2**20

    alex, alex_mib = plan_and_mib("alexnet")
    assert alex.int8 and alex.svd_ranks == {"classifier.fc6.weight": 160, "classifier.fc7.weight": 128}
    zf, zf_mib = plan_and_mib("zfnet")
    vgg, vgg_mib = plan_and_mib("vgg16_bn")
    assert vgg.svd_ranks == {"classifier.0.weight": 64, "classifier.3.weight": 64}
    lenet, lenet_mib = plan_and_mib("lenet5", variant="modern")
    assert not lenet.int8 and not lenet.svd_ranks  # tiny: float16
    gnet, gnet_mib = plan_and_mib("googlenet", aux_logits=False)
    r18, r18_mib = plan_and_mib("resnet18")
    nin, nin_mib = plan_and_mib("nin", config="cifar")
    assert gnet.svd_ranks == r18.svd_ranks == nin.svd_ranks == {} and gnet.int8
    assert vgg_mib < 16  # one file a GPU call can bring back
    assert zf.svd_ranks == {"classifier.fc6.weight": 160, "classifier.fc7.weight": 128}
    sizes = [alex_mib, zf_mib, vgg_mib, lenet_mib, gnet_mib, r18_mib, nin_mib]
    assert [round(x, 2) for x in sizes] == [6.10, 7.42, 15.80, 0.15, 5.95, 10.82, 0.97]  # the docstring's table
    assert sum(sizes) <= 48, f"the seven starters would take {sum(sizes):.1f} MiB"


def test_compressed_bytes_is_the_size_of_the_written_file(tmp_path):
    torch.manual_seed(0)
    model = create_model("vgg11_bn", num_classes=10, input_size=32)
    plan = make_plan(int8=True, svd_ranks={"classifier.0.weight": 16})
    weights, _ = save_checkpoint(tmp_path / "v", model, build_meta(model), compression=plan)
    # save_checkpoint's header names the format and arch too: a few dozen bytes more than the plain estimate
    assert 0 <= weights.stat().st_size - compressed_bytes(model, plan) < 200


@pytest.mark.parametrize("mode,want", [("auto", "svd-int8"), ("none", "float16"), ("int8", "int8"),
                                       ("svd-int8", "svd-int8")])
def test_plan_for_each_compress_mode(mode, want):
    model = create_model("alexnet", num_classes=10, input_size=23)
    plan = plan_for(mode, "alexnet", model)
    assert plan.name == want
    assert plan.int8 == (mode != "none")


def test_plan_for_refuses_ranks_that_do_not_fit():
    model = create_model("alexnet", num_classes=10, input_size=23)  # fc6 is 4096 x 256 here
    with pytest.raises(ValueError, match=r"rank 300 does not fit classifier.fc6.weight \(4096 x 256\): use 1 to 256"):
        plan_for("auto", "alexnet", model, {"classifier.fc6.weight": 300})
    with pytest.raises(ValueError, match="not the weight of a Linear layer.*classifier.fc6.weight"):
        plan_for("svd-int8", "alexnet", model, {"features.conv1.weight": 8})
    with pytest.raises(ValueError, match="needs --compress svd-int8 or auto"):
        plan_for("int8", "alexnet", model, {"classifier.fc6.weight": 8})
    with pytest.raises(ValueError, match="unknown compression 'zip'"):
        plan_for("zip", "alexnet", model)
    resnet = create_model("resnet18", num_classes=10, input_size=32)
    with pytest.raises(ValueError, match="no fully connected layer big enough"):
        plan_for("svd-int8", "resnet18", resnet)


# ------------------------------------------------------------------------------------ damaged checkpoints
@pytest.fixture
def compressed(tmp_path):
    """A small compressed checkpoint with int8, SVD and float16 tensors: (stem, model)."""
    torch.manual_seed(0)
    model = create_model("vgg11_bn", num_classes=10, input_size=32).eval()
    _low_rank_(model.classifier[0], 16)
    save_checkpoint(tmp_path / "v", model, build_meta(model),
                    compression=make_plan(int8=True, svd_ranks={"classifier.0.weight": 16}))
    return tmp_path / "v", model


def _rewrite_meta(stem, change) -> None:
    path = stem.with_suffix(".json")
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def _rewrite_weights(stem, change) -> None:
    """Change the stored tensors and re-sign the file, as a tool that knows the format but breaks it would."""
    import hashlib

    from safetensors.torch import load_file, save

    tensors = load_file(stem.with_suffix(".safetensors"))
    change(tensors)
    data = save(tensors)
    stem.with_suffix(".safetensors").write_bytes(data)
    _rewrite_meta(stem, lambda m: m["compression"].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest()))


def test_a_tampered_file_is_refused_as_modified_or_damaged(compressed):
    stem, _ = compressed
    path = stem.with_suffix(".safetensors")
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01  # one bit of one weight
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"v.safetensors was modified or damaged after it was written"):
        load_checkpoint(stem)


def test_a_truncated_file_is_refused_with_its_size(compressed):
    stem, _ = compressed
    path = stem.with_suffix(".safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"truncated \({len(data) // 2:,} of {len(data):,} bytes\)"):
        load_checkpoint(stem)


@pytest.mark.parametrize("missing,what", [("classifier.0.weight:right_scale", "right factor's scales"),
                                          ("classifier.0.weight:left", "left SVD factor"),
                                          ("features.4.weight:scale", "per-channel scales")])
def test_a_missing_factor_or_scale_is_named(compressed, missing, what):
    stem, _ = compressed
    _rewrite_weights(stem, lambda t: t.pop(missing))
    with pytest.raises(CheckpointError, match=rf"its {what} \({missing}\) is missing from the weights file"):
        load_checkpoint(stem)


def test_a_rank_or_shape_that_does_not_fit_the_architecture_is_refused(compressed):
    stem, _ = compressed
    _rewrite_meta(stem, lambda m: m["compression"]["tensors"]["classifier.0.weight"].update(rank=17))
    with pytest.raises(CheckpointError, match=r"left SVD factor .* expected int8 \(4096, 17\)"):
        load_checkpoint(stem)
    _rewrite_meta(stem, lambda m: m["compression"]["tensors"]["classifier.0.weight"].update(rank=600))
    with pytest.raises(CheckpointError, match=r"rank 600 does not fit a \(4096, 512\) matrix"):
        load_checkpoint(stem)
    _rewrite_meta(stem, lambda m: m["compression"]["tensors"]["classifier.0.weight"].update(shape=[4096, 256]))
    with pytest.raises(CheckpointError, match=r"classifier.0.weight is recorded as \(4096, 256\), the architecture "
                                              r"needs \(4096, 512\)"):
        load_checkpoint(stem)


def test_an_unknown_compression_version_asks_for_an_update(compressed):
    stem, _ = compressed
    _rewrite_meta(stem, lambda m: m["compression"].update(format="cnnviz-compression/9"))
    with pytest.raises(CheckpointError, match=rf"format 'cnnviz-compression/9' is not one this cnnviz reads "
                                              rf"\({FORMAT_VERSION}\); update cnnviz"):
        load_checkpoint(stem)


def test_a_file_with_tensors_the_entry_does_not_describe_is_refused(compressed):
    stem, _ = compressed
    _rewrite_weights(stem, lambda t: t.update({"smuggled": torch.zeros(3)}))
    with pytest.raises(CheckpointError, match=r"1 tensors the compression entry does not describe"):
        load_checkpoint(stem)


def test_a_plain_loader_cannot_mistake_int8_codes_for_weights(compressed):
    """The stored names differ from the state-dict keys, so a loader that ignores the entry fails loudly."""
    stem, _ = compressed
    _rewrite_meta(stem, lambda m: m.pop("compression"))
    with pytest.raises(CheckpointError, match="weights do not match vgg11_bn"):
        load_checkpoint(stem)


def test_compression_error_is_a_value_error_with_the_tensor_name():
    with pytest.raises(CompressionError, match="w: unknown storage kind 'zip'"):
        decompress_state_dict({}, {"format": FORMAT_VERSION, "tensors": {"w": {"kind": "zip", "shape": [1]}}})
    assert issubclass(CompressionError, ValueError)


def test_float_checkpoints_still_load_as_before(tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10, input_size=32)
    save_checkpoint(tmp_path / "h", model, build_meta(model), dtype=torch.float16)
    meta = json.loads((tmp_path / "h.json").read_text())
    assert meta["dtype"] == "float16" and "compression" not in meta
    loaded = load_checkpoint(tmp_path / "h").model
    for k, v in model.state_dict().items():
        assert torch.allclose(loaded.state_dict()[k].float(), v.float(), atol=1e-2, rtol=1e-2), k


def test_the_benchmark_table_of_the_shipped_starters_is_their_own_export_records():
    """docs/benchmarks.md's "What compression cost the shipped starters": one row per shipped starter, its
    numbers read from the starter's own record (the starters are compressed files: measuring them again would
    compare a compressed model with itself)."""
    from bench.bench_compress import shipped
    from cnnviz.starter import starter_dir

    root = Path(__file__).resolve().parents[1] / "checkpoints"
    metas = {p.stem: json.loads(p.read_text()) for p in starter_dir(root).glob("*.json")}
    table, where, when, gap = shipped(root)
    rows = table.splitlines()[2:]
    assert len(rows) == len(metas) == 7
    for stem, meta in metas.items():
        m = meta["compression"]["measured"]
        row = next(r for r in rows if r.startswith(f"| `{stem}` |"))
        assert f"{100 * m['reference_top1']:.2f}% -> {100 * m['top1']:.2f}% ({m['top1_change_pp']:+.2f} pp)" in row
        assert m["n"] == 10_000 and abs(meta["metrics"]["val_top1"] - m["top1"]) * 100 <= gap + 1e-9
    # each row names the machine its zoo result trained and measured on (six on the H200, LeNet-5 on the CPU)
    from cnnviz.zoo.results import list_results, results_dir

    devices = {r["starter"]["checkpoint"].removesuffix(".safetensors"): r["device_name"]
               for r in list_results(results_dir(root))}
    for stem in metas:
        assert next(r for r in rows if r.startswith(f"| `{stem}` |")).endswith(f"| {devices[stem]} |"), stem
    assert where == ", ".join(sorted(set(devices.values()))) and when.startswith("2026-11-28") and 0 <= gap < 0.5
