"""Look inside a network the Zeiler & Fergus way (ECCV 2014): filters, feature maps, deconvnet projections,
top-9 patches, occlusion sensitivity, and captum attributions with a randomisation sanity check.

Every function takes a model (a checkpoint's, or randomly initialised) and a preprocessed input
(``cnnviz.preprocess.to_tensor_for(img, meta)``) and returns arrays plus, where useful, a ready uint8 figure
(``cnnviz.viz.render.png_bytes`` turns it into a PNG). None of them modifies the model it is given: they work
on private views (see :mod:`cnnviz.viz.hooks`), so a model shared between app sessions is safe.

    from cnnviz.viz import deconvnet, feature_maps, filter_grid, occlusion, scan_top9, attribute
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnnviz.training.folder import RunFolder, snapshot_files, starter_snapshots_dir
from cnnviz.viz.attribution import METHODS, attribute, randomized_copy, sanity_check
from cnnviz.viz.deconv import (
    Projection,
    deconvnet,
    guided_backprop,
    is_same_for_every_image,
    project,
    project_switches,
    top_channels,
)
from cnnviz.viz.filters import compare_first_layers, conv_layers, filter_channels, filter_grid, filter_stats
from cnnviz.viz.hooks import StopForward, hook_counts, private_view
from cnnviz.viz.layers import map_layers
from cnnviz.viz.maps import FeatureMaps, feature_maps, unit_region
from cnnviz.viz.occlusion import OcclusionResult, occlusion
from cnnviz.viz.top9 import ScanCancelled, TopK, patches, scan

scan_top9 = scan

__all__ = [
    "METHODS", "FeatureMaps", "OcclusionResult", "Projection", "ScanCancelled", "Snapshot", "StopForward", "TopK",
    "attribute", "compare_first_layers", "conv_layers", "deconvnet", "feature_maps", "filter_channels",
    "filter_grid", "filter_stats", "guided_backprop", "hook_counts", "is_same_for_every_image", "list_snapshots", "map_layers", "snapshots_of", "occlusion", "patches",
    "private_view", "project", "project_switches", "randomized_copy", "sanity_check", "scan", "scan_top9",
    "top_channels", "unit_region",
]


@dataclass
class Snapshot:
    epoch: int
    path: Path  # the .safetensors file


def list_snapshots(run_dir: str | Path) -> list[Snapshot]:
    """Per-epoch snapshots kept by a training run (``<run>/epochs/epoch_NNN.safetensors`` with its ``.json``),
    oldest first; an empty list when the run kept none (ZF Fig. 4: features across training)."""
    return [Snapshot(epoch, path) for epoch, path in RunFolder(run_dir).snapshots()]


def snapshots_of(weights: str | Path, kind: str, epoch: int | None = None) -> list[Snapshot]:
    """The snapshots to show across training for the checkpoint ``weights`` of catalog ``kind``: a run's kept
    snapshots, or those a starter ships in ``<name>.epochs/`` followed by the starter itself at its own
    ``epoch`` (the run's best, which the shipped snapshots stop short of). Empty when there are none."""
    weights = Path(weights)
    if kind == "run":
        return list_snapshots(weights.parent)
    if kind != "starter":
        return []
    snaps = [Snapshot(e, p) for e, p in snapshot_files(starter_snapshots_dir(weights))]
    if snaps and isinstance(epoch, int) and epoch > snaps[-1].epoch:
        snaps.append(Snapshot(epoch, weights))
    return snaps
