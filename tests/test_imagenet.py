"""cnnviz.imagenet: torchvision's ImageNet weights in our models (issue 14), tested without a network.

torchvision's model with random weights is saved where torch.hub's cache keeps the real download
(tests/imagenet_helpers.py); our loader must then give torchvision's logits exactly, for every architecture.
"""

from __future__ import annotations

import zipfile

import pytest
import torch

from cnnviz import imagenet
from cnnviz.catalog import find_checkpoint
from cnnviz.checkpoint import CheckpointError, load_checkpoint
from cnnviz.imagenet.tiny_classes import TINY_TO_IMAGENET, class_ids, derive_indices
from tests.imagenet_helpers import place_random_weights, torchvision_cache_path

# one entry per architecture (the V2 ResNet weights are the same networks as V1's)
BY_ARCH = list({e.arch: e for e in reversed(imagenet.ENTRIES)}.values())[::-1]


def _logits(model, x):
    with torch.inference_mode():
        return model(x)


@pytest.mark.parametrize("entry", imagenet.ENTRIES, ids=lambda e: e.name)
def test_entry_is_torchvisions_weight_set_for_that_builder(entry):
    """The catalog's file names and builders are torchvision's own (the catalog lists without importing it)."""
    from torchvision.models import get_model_weights, get_weight

    weights = get_weight(entry.weights)
    assert weights in list(get_model_weights(entry.arch))  # torchvision's builder of the same name
    assert weights.url.rsplit("/", 1)[1] == entry.file
    assert entry.mb == round(weights.meta["_file_size"])
    assert imagenet.cached_file(entry) == torchvision_cache_path(entry.weights)


@pytest.mark.slow
@pytest.mark.parametrize("entry", BY_ARCH, ids=lambda e: e.arch)
def test_our_model_gives_torchvisions_logits(entry):
    """Equivalence: the structure is the same. Loaded through the catalog, as every page and the CLI load it."""
    tv, path = place_random_weights(entry, seed=len(entry.arch))
    try:
        info = find_checkpoint(entry.catalog_name)
        assert info is not None and info.ok and info.path == path and info.kind == "imagenet"
        ckpt = load_checkpoint(info.path)
        assert ckpt.model.arch == entry.arch and ckpt.model.model_args["input_size"] == 224
        if "stride_in" in entry.variant:
            assert ckpt.model.stride_in == "3x3"  # torchvision's v1.5, not the paper's default
        # loaded in channels-last layout (speed); compared in torchvision's layout, where the same function
        # gives the same floats (another layout sums in another order: differences of ~1e-4 after 34 layers)
        assert ckpt.model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
        model = ckpt.model.to(memory_format=torch.contiguous_format)
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        ours, theirs = _logits(model, x), _logits(tv, x)
        assert ours.shape == (2, 1000)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
        assert ours.std() > 1e-3  # not a degenerate all-zero comparison
    finally:
        path.unlink()  # hundreds of MB per VGG: do not leave them in pytest's kept temp folders


@pytest.mark.slow
def test_paper_resnet50_computes_another_function_with_the_same_weights():
    """Why the entry builds stride_in='3x3': the paper's 1x1 stride takes the same tensors (same shapes) but
    gives other logits, so only an equivalence test, not a shape check, can tell the variants apart."""
    from cnnviz.models import create_model

    entry = imagenet.get_entry("resnet50")
    tv, path = place_random_weights(entry)
    paper = create_model("resnet50", num_classes=1000, input_size=224)  # stride_in="1x1"
    paper.load_state_dict(imagenet.weights.read_state(path), strict=True)
    x = torch.randn(1, 3, 224, 224)
    assert not torch.allclose(_logits(paper.eval(), x), _logits(tv, x), atol=1e-3)
    path.unlink()


def test_a_missing_or_extra_tensor_refuses_the_whole_load():
    entry = imagenet.get_entry("resnet18")
    tv, path = place_random_weights(entry)
    state = tv.state_dict()
    for broken, words in (({k: v for k, v in state.items() if k != "layer2.0.conv1.weight"}, "1 missing"),
                          ({**state, "layer5.0.conv1.weight": torch.zeros(1)}, "1 unexpected"),
                          ({**state, "fc.weight": torch.zeros(10, 512)}, "fc.weight has shape (10, 512)")):
        torch.save(broken, path)
        with pytest.raises(CheckpointError, match="nothing was loaded") as err:
            imagenet.load_entry(entry)
        assert words in str(err.value)


def test_files_without_batchnorm_counters_load():
    """Older torchvision files lack num_batches_tracked (a training-only counter): they still load, exactly."""
    entry = imagenet.get_entry("resnet18")
    tv, _ = place_random_weights(entry, drop=("num_batches_tracked",))
    x = torch.randn(1, 3, 224, 224)
    ours = imagenet.load_entry(entry).model.to(memory_format=torch.contiguous_format)  # (layout: see above)
    torch.testing.assert_close(_logits(ours, x), _logits(tv, x))


class Smuggled:  # pickled by reference: torch.load(weights_only=True) must refuse it
    pass


def test_only_tensors_are_read(tmp_path):
    path = imagenet.cached_file("resnet18")
    path.parent.mkdir(parents=True)
    torch.save({"fc.weight": torch.zeros(1), "payload": Smuggled()}, path)
    with pytest.raises(CheckpointError, match="tensors-only"):
        imagenet.load_entry("resnet18")
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="cannot be read"):
        imagenet.load_entry("resnet18")


def test_not_cached_message_names_the_file_and_where_it_goes():
    with pytest.raises(imagenet.WeightsNotCached) as err:
        imagenet.load_entry("vgg16")
    msg = str(err.value)
    assert "vgg16-397923af.pth" in msg and str(imagenet.cache_dir()) in msg and "TORCH_HOME" in msg
    assert "python -m cnnviz imagenet fetch vgg16" in msg


def test_the_tiny_imagenet_classes_keep_their_wordnet_ids():
    ids = class_ids()
    assert len(ids) == len(set(ids)) == 1000 and len(TINY_TO_IMAGENET) == 200
    indices = [TINY_TO_IMAGENET[w] for w in sorted(TINY_TO_IMAGENET)]
    assert indices == sorted(indices)  # ImageNet's outputs are in WordNet-id order
    names = imagenet.imagenet_meta("vgg16")["class_names"]
    assert names[TINY_TO_IMAGENET["n01443537"]] == "goldfish" and ids[1] == "n01443537"
    assert ids[0] == "imagenet1k/0"  # tench: not a Tiny ImageNet class


@pytest.mark.realdata
def test_the_wordnet_table_is_what_the_real_data_gives(shared_zip):
    with zipfile.ZipFile(shared_zip) as z:
        words = {}
        for line in z.read("tiny-imagenet-200/words.txt").decode().splitlines():
            wnid, _, lemmas = line.partition("\t")
            words[wnid] = [s.strip() for s in lemmas.split(",")]
        tiny = z.read("tiny-imagenet-200/wnids.txt").decode().split()
    categories = imagenet.imagenet_meta("vgg16")["class_names"]
    assert derive_indices(words, tiny, categories) == TINY_TO_IMAGENET
