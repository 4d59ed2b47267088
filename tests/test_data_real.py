"""Real Tiny ImageNet (../shared/data/tiny-imagenet-200.zip): skipped with the reason where it is absent."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz.data import BatchPipeline, load_split, prepare


@pytest.mark.realdata
def test_real_val_split_from_the_shared_zip(shared_zip, tmp_path):
    root = prepare(shared_zip, tmp_path / "data", splits=("val",))  # val only: 10k images, a few seconds
    val = load_split(root, "val")
    assert val.images.shape == (10_000, 64, 64, 3) and val.images.dtype == np.uint8
    assert len(val.wnids) == 200 and val.wnids[0] == "n02124075"  # wnids.txt order, not sorted
    assert np.bincount(val.labels, minlength=200).tolist() == [50] * 200
    # val_annotations.txt: "val_0.JPEG  n03444034  0 32 44 62" (a go-kart); val_0 comes first
    assert val.labels[0] == val.wnids.index("n03444034")
    assert val.class_names[val.labels[0]] == "go-kart"
    assert val.class_descriptions[val.wnids.index("n02124075")] == "Egyptian cat"
    # about 1.7% of the images are grayscale JPEGs, decoded to three equal channels
    assert 100 < val.manifest["modes"]["L"] < 300
    assert val.manifest["source"]["kind"] == "zip"
    assert 0.3 < np.asarray(val.images[:500]).mean() / 255 < 0.6
    assert val.manifest["stats_from"] == "published Tiny ImageNet train statistics"  # no train cache here
    x, y = next(iter(BatchPipeline.from_split(val, 256, "cpu")))
    assert x.shape == (256, 3, 64, 64) and y[0] == val.labels[0]
