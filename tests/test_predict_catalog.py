"""cnnviz.catalog: which checkpoints the Predict/Compare/Visualize pages offer."""

from __future__ import annotations

import os

from cnnviz.catalog import describe, find_checkpoint, list_checkpoints
from cnnviz.paths import checkpoints_dir
from tests.predict_helpers import default_arch, make_checkpoint


def test_starters_then_runs_with_names_arch_and_meta():
    root = checkpoints_dir()
    make_checkpoint(root / "starter" / "zeta", metrics={"val_top1": 0.25})
    make_checkpoint(root / "starter" / "alpha")
    make_checkpoint(root / "run-b" / "best")
    make_checkpoint(root / "run-b" / "last")
    make_checkpoint(root / "run-a" / "last")
    (root / "run-c").mkdir()  # a queued run with no checkpoint yet
    infos = list_checkpoints()
    assert [i.name for i in infos] == ["starter/alpha", "starter/zeta", "run-a/last", "run-b/best", "run-b/last"]
    assert {i.arch for i in infos} == {default_arch()}
    assert [i.kind for i in infos] == ["starter", "starter", "run", "run", "run"]
    z = infos[1]
    assert z.path == root / "starter" / "zeta.safetensors" and z.meta["num_classes"] == 10
    assert "25.0%" in z.label and z.cache_key == (str(z.path), os.stat(z.path).st_mtime)
    assert infos[3].run == "run-b" and infos[3].tag == "best"


def test_missing_root_is_empty(tmp_path):
    assert list_checkpoints(tmp_path / "nowhere") == []


def test_broken_files_are_skipped_or_reported_never_raised():
    root = checkpoints_dir()
    make_checkpoint(root / "starter" / "good")
    torn = make_checkpoint(root / "starter" / "torn")
    torn.with_suffix(".json").write_text('{"arch": "lenet5", ')
    orphan = root / "starter" / "orphan.safetensors"
    orphan.write_bytes(b"x")
    empty = make_checkpoint(root / "run-x" / "best")
    empty.write_bytes(b"")
    (root / "run-y").mkdir()
    (root / "run-y" / "best.json").write_text("[1, 2]")  # metadata without weights, and not an object
    assert [i.name for i in list_checkpoints()] == ["starter/good"]
    broken = {i.name: i.error for i in list_checkpoints(include_broken=True) if not i.ok}
    assert set(broken) == {"starter/orphan", "starter/torn", "run-x/best", "run-y/best"}
    assert "not valid JSON" in broken["starter/torn"]
    assert "orphan.json is missing" in broken["starter/orphan"]
    assert "empty" in broken["run-x/best"]
    assert "missing" in broken["run-y/best"]


def test_symlink_escaping_the_root_is_ignored(tmp_path):
    outside = tmp_path / "outside"
    make_checkpoint(outside / "evil")
    root = checkpoints_dir()
    root.mkdir(parents=True)
    (root / "sneaky").symlink_to(outside, target_is_directory=True)
    (outside / "best.safetensors").symlink_to(outside / "evil.safetensors")
    (outside / "best.json").symlink_to(outside / "evil.json")
    (root / "run-z").mkdir()
    (root / "run-z" / "best.safetensors").symlink_to(outside / "evil.safetensors")
    (root / "run-z" / "best.json").symlink_to(outside / "evil.json")
    assert list_checkpoints(include_broken=True) == []


def test_find_and_describe():
    root = checkpoints_dir()
    make_checkpoint(root / "starter" / "m")
    assert find_checkpoint("starter/m").path == root / "starter" / "m.safetensors"
    assert find_checkpoint("starter/none") is None
    d = describe(root / "starter" / "m.json")
    assert d.ok and d.path.suffix == ".safetensors" and d.size > 0


def test_one_ordering_runs_newest_first_by_creation_time():
    """Issue 11: Visualize listed runs oldest first, Compare newest first. The catalog's one order: starters by
    name, then runs newest first by their creation time (config.json), whatever their names; list_runs and
    Compare's entries follow it."""
    import json

    from cnnviz.compare import list_entries
    from cnnviz.training.runs import list_runs

    root = checkpoints_dir()
    make_checkpoint(root / "starter" / "s")
    for name, created in (("a-newest", 300.0), ("z-oldest", 100.0), ("m-middle", 200.0)):
        make_checkpoint(root / name / "best")
        (root / name / "config.json").write_text(json.dumps({"arch": default_arch(), "created": created}))
        (root / name / "status.json").write_text(json.dumps({"state": "done"}))
    order = ["a-newest", "m-middle", "z-oldest"]
    assert [i.name for i in list_checkpoints()] == ["starter/s"] + [f"{r}/best" for r in order]
    assert [r.id for r in list_runs()] == order
    assert [e.id for e in list_entries()] == ["starter/s", *order]


def test_dataset_of_a_checkpoint_from_its_metadata():
    from cnnviz.catalog import dataset_of

    tiny = dataset_of({"classes": [f"n{i:08d}" for i in range(200)], "num_classes": 200, "input_size": 64})
    assert (tiny.name, tiny.label) == ("Tiny ImageNet", "Tiny ImageNet, 200 classes at 64x64")
    imagenet = dataset_of({"classes": [f"n{i:08d}" for i in range(1000)], "num_classes": 1000, "input_size": 224})
    assert imagenet.label == "ImageNet, 1000 classes at 224x224"
    synthetic = dataset_of({"classes": [f"s{i:07d}" for i in range(1, 11)], "num_classes": 10, "input_size": 64})
    assert synthetic.name == "synthetic demo set" and synthetic.key != tiny.key
    run = dataset_of({}, config={"data": "synthetic", "input_size": 64}, status={"num_classes": 10})
    assert (run.name, run.num_classes) == ("synthetic demo set", 10)
    assert dataset_of({"dataset": "Places365", "num_classes": 365}).name == "Places365"  # an explicit name wins


def test_most_accurate_compares_within_a_dataset_tiny_imagenet_first():
    """Visualize opens on the most accurate checkpoint: a synthetic demo run's 87.5% (10 easy classes) must not
    beat a Tiny ImageNet starter's 38.8%; among Tiny ImageNet checkpoints the higher top-1 wins."""
    from pathlib import Path

    from cnnviz.catalog import CheckpointInfo, most_accurate

    def info(name, top1, classes):
        return CheckpointInfo(name=name, arch="resnet18", path=Path(f"/x/{name}.safetensors"),
                              meta={"classes": classes, "num_classes": len(classes), "input_size": 64,
                                    "metrics": {"val_top1": top1}})

    tiny = [f"n{i:08d}" for i in range(200)]
    demo = info("demo/best", 0.875, [f"s{i:07d}" for i in range(1, 11)])
    weak, strong = info("starter/weak", 0.07, tiny), info("starter/strong", 0.388, tiny)
    other = info("other/best", 0.6, [f"c{i}" for i in range(5)])  # an unknown dataset: after Tiny ImageNet
    assert most_accurate([demo, weak, other, strong]).name == "starter/strong"
    assert most_accurate([demo, other]).name == "other/best"
    assert most_accurate([demo]).name == "demo/best"  # only synthetic: still the best there is


def test_visualize_opens_on_the_zfnet_starter_else_the_most_accurate():
    from pathlib import Path

    from cnnviz.catalog import CheckpointInfo, visualize_default

    tiny = [f"n{i:08d}" for i in range(200)]

    def info(name, arch, top1, kind="starter"):
        return CheckpointInfo(name=name, arch=arch, path=Path(f"/x/{name}.safetensors"), kind=kind,
                              meta={"classes": tiny, "num_classes": 200, "input_size": 64,
                                    "metrics": {} if top1 is None else {"val_top1": top1}})

    resnet, zfnet = info("starter/resnet18", "resnet18", 0.58), info("starter/zfnet", "zfnet", 0.40)
    run = info("zfnet-run/best", "zfnet", 0.02, kind="run")  # a user's one-epoch ZFNet is no better a default
    assert visualize_default([resnet, run, zfnet]).name == "starter/zfnet"
    assert visualize_default([resnet, run]).name == "starter/resnet18"
    assert visualize_default([resnet, info("starter/zf", "zfnet", None)]).name == "starter/zf"  # no number: still
    assert visualize_default([]) is None
