"""torchvision ImageNet models with random weights, saved where torch.hub's cache keeps the real download.

This is how the ImageNet path is tested (and benchmarked) without a network: the file has torchvision's
name (from the weight enum's URL) in ``$TORCH_HOME/hub/checkpoints``, so cnnviz cannot tell it from a real
download, except that its predictions mean nothing.
"""

from __future__ import annotations

from pathlib import Path

import torch


def torchvision_model(arch: str, seed: int = 0) -> torch.nn.Module:
    """torchvision's ``arch`` (eval mode) with random weights, batch-norm statistics and affine parameters
    included (freshly built, they are 0/1 and would hide a mix-up of those tensors)."""
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torchvision.models.get_model(arch, weights=None)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.normal_(0, 0.1)
    return model.eval()


def torchvision_cache_path(weights: str) -> Path:
    """Where torchvision's own loader would put ``weights``'s download: the URL's file name in torch.hub's dir."""
    from torchvision.models import get_weight

    return Path(torch.hub.get_dir()) / "checkpoints" / get_weight(weights).url.rsplit("/", 1)[1]


def place_random_weights(entry, seed: int = 0, drop: tuple[str, ...] = ()) -> tuple[torch.nn.Module, Path]:
    """Build torchvision's model for ``entry`` (a :class:`cnnviz.imagenet.ImageNetEntry`) with random weights
    and save its state dict (minus the keys ending in any of ``drop``) as the cached download. Returns
    ``(torchvision_model, path)``."""
    model = torchvision_model(entry.arch, seed)
    path = torchvision_cache_path(entry.weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in model.state_dict().items() if not (drop and k.endswith(drop))}
    torch.save(state, path)
    return model, path
