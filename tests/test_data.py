"""cnnviz.data: label parsing, grayscale, the uint8 cache (build, staleness, reload) and the batch pipeline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cnnviz.data import (
    FORMAT_VERSION,
    BatchPipeline,
    DatasetError,
    cache_status,
    find_dataset,
    load_split,
    make_synthetic,
)
from cnnviz.data.cache import cache_paths
from tests.data_helpers import COLOURS, WNIDS, label_of_colour, mini_tree, zip_tree  # noqa: F401


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("syn") / "syn", num_classes=4, train_per_class=24,
                          val_per_class=6, seed=1)


# --------------------------------------------------------------------------------------------- labels


def test_labels_follow_wnids_order_and_val_annotations(tmp_path):
    root = mini_tree(tmp_path / "tin")
    train = load_split(root, "train")
    assert train.wnids == WNIDS
    assert train.class_names == ["class 3", "class 1", "class 2"]  # first synonym from words.txt
    assert train.class_descriptions[0] == "class 3, synonym 3"
    assert train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4  # wnids.txt order, not alphabetical
    for img, label in zip(train.images, train.labels, strict=True):
        assert label_of_colour(img) == label

    val = load_split(root, "val")
    # An ImageFolder over val/ would give one class for everything; the annotations give these:
    assert val.labels.tolist() == [2, 0, 1, 1, 2, 0, 2]
    assert [label_of_colour(img) for img in val.images] == val.labels.tolist()
    assert val.mean == train.mean  # val is normalised with the train statistics


def test_grayscale_becomes_rgb(tmp_path):
    root = mini_tree(tmp_path / "tin", gray=("n01000001_2.JPEG", "val_3.JPEG"))
    train = load_split(root, "train")
    assert train.images.shape == (12, 64, 64, 3) and train.images.dtype == np.uint8
    assert train.manifest["modes"] == {"RGB": 11, "L": 1}
    gray = train.images[4 + 2]
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    assert 100 < gray.mean() < 160  # the green's luminance, not a black or garbage image
    assert load_split(root, "val").manifest["modes"]["L"] == 1


def test_missing_and_inconsistent_datasets_explain_the_fix(tmp_path):
    with pytest.raises(DatasetError, match="data prepare"):
        load_split(tmp_path / "nothing", "train")
    root = mini_tree(tmp_path / "tin")
    text = (root / "val" / "val_annotations.txt").read_text()
    (root / "val" / "val_annotations.txt").write_text(text + "val_0.JPEG\tn07777777\t0\t0\t1\t1\n")
    with pytest.raises(DatasetError, match="not in wnids.txt"):
        load_split(root, "val")
    (root / "val" / "images" / "val_5.JPEG").unlink()
    (root / "val" / "val_annotations.txt").write_text(text)
    with pytest.raises(DatasetError, match="missing"):
        load_split(root, "val")


def test_find_dataset(tmp_path, monkeypatch):
    assert find_dataset(tmp_path) is None
    root = mini_tree(tmp_path / "tiny-imagenet-200")
    assert find_dataset(tmp_path) == root.resolve()  # the parent folder works too
    assert find_dataset(root) == root.resolve()
    monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path))
    assert find_dataset() == root.resolve()


def test_synthetic_layout_is_tiny_imagenet(synthetic_root):
    root = synthetic_root
    wnids = (root / "wnids.txt").read_text().split()
    assert wnids == ["s0000001", "s0000002", "s0000003", "s0000004"]
    assert "synthetic: vertical stripes" in (root / "words.txt").read_text()
    assert len(list((root / "train" / "s0000001" / "images").glob("s0000001_*.JPEG"))) == 24
    assert (root / "train" / "s0000001" / "s0000001_boxes.txt").is_file()
    assert len(list((root / "val" / "images").glob("val_*.JPEG"))) == 24
    assert not any(p.is_dir() for p in (root / "val" / "images").iterdir())
    with Image.open(root / "val" / "images" / "val_0.JPEG") as im:
        assert im.size == (64, 64) and im.format == "JPEG"
    val = load_split(root, "val")
    assert np.bincount(val.labels).tolist() == [6, 6, 6, 6]
    assert val.labels[:8].tolist() != sorted(val.labels[:8].tolist())  # shuffled, not class-sorted


def test_synthetic_is_deterministic_and_learnable_by_colour_statistics(tmp_path):
    a = load_split(make_synthetic(tmp_path / "a", num_classes=3, train_per_class=3, val_per_class=1), "train")
    b = load_split(make_synthetic(tmp_path / "b", num_classes=3, train_per_class=3, val_per_class=1), "train")
    assert np.array_equal(a.images, b.images)
    with pytest.raises(ValueError, match="between"):
        make_synthetic(tmp_path / "c", num_classes=99)


# ---------------------------------------------------------------------------------------------- cache


def test_cache_build_and_reload(tmp_path):
    root = mini_tree(tmp_path / "tin")
    first = load_split(root, "train")
    assert isinstance(first.images, np.memmap)
    m = first.manifest
    assert m["format_version"] == FORMAT_VERSION and m["count"] == 12 and m["wnids"] == WNIDS
    assert m["per_class"] == [4, 4, 4]
    expected_mean = np.asarray(first.images, dtype=np.float64).reshape(-1, 3).mean(0) / 255
    assert np.allclose(first.mean, expected_mean, atol=1e-5)
    built = m["built_at"], cache_paths(root, "train")[0].stat().st_mtime_ns
    again = load_split(root, "train")
    assert (again.manifest["built_at"], cache_paths(root, "train")[0].stat().st_mtime_ns) == built  # not rebuilt
    assert np.array_equal(again.images, first.images)


def _rebuilt(root: Path, split: str = "train") -> bool:
    before = cache_paths(root, split)[0].stat().st_mtime_ns
    load_split(root, split)
    return cache_paths(root, split)[0].stat().st_mtime_ns != before and cache_status(root, split).fresh


def test_touched_source_makes_the_cache_stale(tmp_path):
    root = mini_tree(tmp_path / "tin")
    load_split(root, "train")
    img = root / "train" / "n01000001" / "images" / "n01000001_0.JPEG"
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    status = cache_status(root, "train")
    assert not status.fresh and "source changed" in status.reason
    assert _rebuilt(root)


def test_changed_class_list_rebuilds_with_new_labels(tmp_path):
    root = mini_tree(tmp_path / "tin")
    assert load_split(root, "train").labels[0] == 0
    (root / "wnids.txt").write_text("\n".join(reversed(WNIDS)) + "\n")
    assert "class list" in cache_status(root, "train").reason
    train = load_split(root, "train")
    assert train.wnids == list(reversed(WNIDS))
    assert [label_of_colour(i) for i in train.images] == [2 - k for k in train.labels.tolist()]


def test_truncated_partial_and_old_format_caches_are_rebuilt(tmp_path):
    root = mini_tree(tmp_path / "tin")
    load_split(root, "train")
    images, labels, manifest = cache_paths(root, "train")
    with images.open("r+b") as f:
        f.truncate(images.stat().st_size - 100)
    assert "truncated" in cache_status(root, "train").reason
    assert _rebuilt(root)

    m = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**m, "format_version": FORMAT_VERSION - 1}))
    assert "format" in cache_status(root, "train").reason
    assert _rebuilt(root)

    manifest.unlink()  # a build killed half-way leaves arrays without a manifest
    assert cache_status(root, "train").reason == "partial cache (no manifest)"
    assert _rebuilt(root)
    assert load_split(root, "train").images.shape == (12, 64, 64, 3)


def test_stale_cache_whose_zip_is_gone_says_what_to_do(tmp_path):
    from cnnviz.data import prepare

    copy = zip_tree(mini_tree(tmp_path / "tree"), tmp_path / "copy.zip")
    root = prepare(copy, tmp_path / "data", splits=("val",))
    copy.unlink()
    assert len(load_split(root, "val")) == 7  # a complete cache is still usable without its zip
    _, _, manifest = cache_paths(root, "val")
    m = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**m, "format_version": 0}))
    with pytest.raises(DatasetError, match="data prepare"):
        load_split(root, "val")


# ------------------------------------------------------------------------------------------- pipeline


def _arrays(n: int = 10, h: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, h, h, 3), dtype=np.uint8), np.arange(n) % 3


@pytest.mark.parametrize("augment", ["crop_flip", "rrc", "flip", "none"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_pipeline_shapes(synthetic_root, augment, channels_last):
    train = load_split(synthetic_root, "train")
    p = BatchPipeline.from_split(train, 32, "cpu", augment=augment, channels_last=channels_last)
    assert len(p) == 96 // 32
    batches = list(p)
    assert len(batches) == 3
    x, y = batches[0]
    assert x.shape == (32, 3, 64, 64) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert torch.isfinite(x).all() and -3 < float(x.mean()) < 3
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == sorted(train.labels.tolist())


def test_eval_batches_are_the_normalised_images_in_order(synthetic_root):
    val = load_split(synthetic_root, "val")
    p = BatchPipeline.from_split(val, 10, "cpu")  # a val split: no shuffle, no augmentation, keeps the tail
    assert not p.train and len(p) == 3
    x = torch.cat([b[0] for b in p])
    y = torch.cat([b[1] for b in p])
    ref = torch.from_numpy(np.array(val.images)).permute(0, 3, 1, 2).float() / 255
    ref = (ref - torch.tensor(val.mean).view(1, 3, 1, 1)) / torch.tensor(val.std).view(1, 3, 1, 1)
    assert torch.allclose(x, ref, atol=1e-5)
    assert y.tolist() == val.labels.tolist()


@pytest.mark.parametrize("pad_mode", ["reflect", "zero"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_crop_flip_matches_pad_crop_flip_per_image(pad_mode, channels_last):
    images, labels = _arrays(12, 8)
    p = BatchPipeline(images, labels, 12, train=True, augment="crop_flip", mean=(0, 0, 0), std=(1, 1, 1),
                      padding=3, pad_mode=pad_mode, seed=5, channels_last=channels_last)
    x, y = next(iter(p))
    idx, plan = p.indices(), p._plan(12)
    assert plan["offset"].abs().max() > 0 and plan["flip"].any() and not plan["flip"].all()
    for k in range(12):
        img = torch.from_numpy(images[idx[k]]).permute(2, 0, 1).float()[None] / 255
        padded = F.pad(img, (3, 3, 3, 3), mode="reflect" if pad_mode == "reflect" else "constant")[0]
        dy, dx = plan["offset"][k].tolist()
        ref = padded[:, 3 + dy:3 + dy + 8, 3 + dx:3 + dx + 8]
        if plan["flip"][k]:
            ref = ref.flip(-1)
        assert torch.allclose(x[k], ref, atol=1e-6), k
        assert y[k] == labels[idx[k]]


def test_rrc_at_full_scale_is_the_image_or_its_mirror():
    images, labels = _arrays(6, 16)
    p = BatchPipeline(images, labels, 6, augment="rrc", mean=(0, 0, 0), std=(1, 1, 1), rrc_scale=(1, 1),
                      rrc_ratio=(1, 1))
    x, _ = next(iter(p))
    idx, flips = p.indices(), p._plan(6)["flip"]
    for k in range(6):
        ref = torch.from_numpy(images[idx[k]]).permute(2, 0, 1).float() / 255
        assert torch.allclose(x[k], ref.flip(-1) if flips[k] else ref, atol=1e-4)


def _epoch(p: BatchPipeline) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*list(p), strict=True)
    return torch.cat(xs), torch.cat(ys)


def test_determinism_under_a_seed_and_variation_across_seeds_and_epochs(synthetic_root):
    train = load_split(synthetic_root, "train")
    make = lambda seed: BatchPipeline.from_split(train, 16, "cpu", seed=seed)  # noqa: E731
    a, b, c = make(3), make(3), make(4)
    xa, ya = _epoch(a)
    xb, yb = _epoch(b)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    xc, yc = _epoch(c)
    assert not torch.equal(ya, yc) and not torch.equal(xa, xc)
    a.set_epoch(1)
    xa1, ya1 = _epoch(a)
    assert not torch.equal(ya, ya1)
    a.set_epoch(0)
    assert torch.equal(_epoch(a)[0], xa)  # going back to epoch 0 replays it exactly


def test_rank_shards_are_disjoint_equal_and_cover(synthetic_root):
    train = load_split(synthetic_root, "train")  # 96 images
    world = 5
    shards = [BatchPipeline.from_split(train, 4, "cpu", rank=r, world_size=world, seed=7) for r in range(world)]
    for p in shards:
        p.set_epoch(2)
    idx = [p.indices() for p in shards]
    assert {len(i) for i in idx} == {96 // world} and len({len(p) for p in shards}) == 1
    flat = torch.cat(idx)
    assert len(set(flat.tolist())) == len(flat)  # disjoint
    assert len(flat) == 96 - 96 % world  # covers all but the remainder of this epoch's permutation
    # the same permutation on every rank: slices of one randperm(seed + epoch)
    perm = torch.randperm(96, generator=torch.Generator().manual_seed(7 + 2))
    assert torch.equal(flat, perm[: len(flat)])
    for p, i in zip(shards, idx, strict=True):  # 19 per rank, batches of 4: 4 steps, the tail dropped
        labels = torch.cat([y for _, y in p])
        assert torch.equal(labels, torch.from_numpy(np.array(train.labels))[i[: len(p) * 4]])

    val = load_split(synthetic_root, "val")  # 24 images, evaluation: every image exactly once
    evals = [BatchPipeline.from_split(val, 4, "cpu", rank=r, world_size=world) for r in range(world)]
    seen = sorted(i for p in evals for i in p.indices().tolist())
    assert seen == list(range(24))


def test_bad_pipeline_arguments(synthetic_root):
    train = load_split(synthetic_root, "train")
    with pytest.raises(ValueError, match="augment"):
        BatchPipeline.from_split(train, 8, augment="mixup")
    with pytest.raises(ValueError, match="rank"):
        BatchPipeline.from_split(train, 8, rank=2, world_size=2)
    big = BatchPipeline.from_split(train, 1000, "cpu")  # a batch larger than the split: one smaller batch
    assert len(big) == 1 and next(iter(big))[0].shape[0] == 96


def test_cpu_pipeline_shares_the_cache_without_risking_it(synthetic_root):
    train = load_split(synthetic_root, "train")
    before = np.array(train.images[0])
    p = BatchPipeline.from_split(train, 8, "cpu")
    p.images[0] = 0  # copy-on-write mapping: a stray write changes a private page, never the cache file
    assert np.array_equal(load_split(synthetic_root, "train").images[0], before)


@pytest.mark.parametrize("augment", ["crop_flip", "rrc", "none"])
def test_output_size_other_than_the_images(synthetic_root, augment):
    train = load_split(synthetic_root, "train")
    x, _ = next(iter(BatchPipeline.from_split(train, 8, "cpu", augment=augment, size=32)))
    assert x.shape == (8, 3, 32, 32) and torch.isfinite(x).all()


def test_cpu_threads_apply_to_batch_making_only(synthetic_root):
    train = load_split(synthetic_root, "train")
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = [torch.get_num_threads() for _ in BatchPipeline.from_split(train, 32, "cpu", cpu_threads=1)]
        assert seen == [2, 2, 2]  # the consumer (the model) keeps its own setting between batches
    finally:
        torch.set_num_threads(previous)


def test_a_dataset_png_is_decoded_as_an_upload_of_it_is_seen():
    """A folder dataset of PNGs (Tiny ImageNet's layout, other data): 16-bit grey kept its greys only on the upload
    path (Pillow's I;16 -> RGB clips at 255), and transparency went black here but white there."""
    import io

    from PIL import Image

    from cnnviz.data.decode import decode_image
    from cnnviz.images import open_image

    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    clear = Image.new("RGBA", (64, 64), (200, 10, 10, 0))
    for img in (Image.fromarray(ramp), clear):
        buf = io.BytesIO()
        img.save(buf, "PNG")
        pixels, _ = decode_image(buf.getvalue())
        assert np.array_equal(pixels, np.asarray(open_image(buf.getvalue())))
    assert pixels.min() == 255  # the transparent image: white, as a viewer shows it
