"""Top-k predictions for images, preprocessed exactly as the checkpoint was trained.

::

    ckpt = load_checkpoint("checkpoints/starter/resnet18_tinyimagenet.safetensors")
    result = topk(ckpt.model, open_image("cat.jpg"), ckpt.meta, k=5, image="cat.jpg", checkpoint="resnet18")
    result.predictions[0].name, result.predictions[0].prob, result.ms

The model is only read: prediction runs under ``torch.inference_mode()`` on whatever device the model is on,
without switching train/eval mode, moving it or registering hooks, so a model cached for every browser session
can be used from several threads at once. A model found in training mode is refused (its outputs would be
wrong, and switching it would mutate a shared object).
"""

from __future__ import annotations

import csv
import io
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
from PIL import Image

from cnnviz.catalog import DatasetInfo, dataset_of
from cnnviz.checkpoint import CheckpointMeta
from cnnviz.preprocess import network_input, to_tensor_for

# An upload whose shorter side is under this fraction of the model's input is blown up so much that the
# network sees mostly interpolation (a 1x1 PNG becomes one flat colour): say so beside its predictions.
MUCH_SMALLER = 0.5
# Things people photograph that a model may not know; the sentence names the first one that is not a class.
COMMON_SUBJECTS = ("person", "face", "car", "phone")


@dataclass
class ClassProb:
    index: int  # output index of the class
    wnid: str  # WordNet id (e.g. "n01443537"), or "class_<i>" when the checkpoint has no class list
    name: str  # human-readable name
    prob: float  # softmax probability, 0..1


@dataclass
class PredictResult:
    image: str  # display name of the image (never a path that is opened)
    checkpoint: str  # display name of the checkpoint
    predictions: list[ClassProb]
    ms: float  # wall time of preprocessing + forward + softmax for this image, milliseconds
    extra: dict = field(default_factory=dict)

    @property
    def top1(self) -> ClassProb:
        return self.predictions[0]

    def to_dict(self) -> dict:
        """The CLI's JSON record: ``{"image", "checkpoint", "predictions": [{"wnid", "name", "prob"}], "ms"}``."""
        return {"image": self.image, "checkpoint": self.checkpoint,
                "predictions": [{"wnid": p.wnid, "name": p.name, "prob": round(float(p.prob), 6)}
                                for p in self.predictions],
                "ms": round(float(self.ms), 3)}


def class_labels(meta: dict) -> tuple[list[str], list[str]]:
    """``(wnids, names)`` in output order; placeholders where the metadata lacks them."""
    meta = CheckpointMeta.of(meta)
    n = int(meta.num_classes)
    wnids, names = meta.classes or [], meta.class_names or []
    wnids = [str(w) for w in wnids] if len(wnids) == n else [f"class_{i}" for i in range(n)]
    names = [str(s) for s in names] if len(names) == n else list(wnids)
    return wnids, names


def network_view(img: Image.Image, meta: dict) -> Image.Image:
    """The picture the network actually sees: resized, centre-cropped, normalised and back (the one
    :func:`cnnviz.preprocess.network_input`, which Visualize draws its figures over)."""
    return network_input(img, meta)[1]


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _check_eval(model: nn.Module) -> None:
    if model.training:
        raise RuntimeError("the model is in training mode; load it with cnnviz.checkpoint.load_checkpoint "
                           "(which returns it in eval mode) and do not switch shared models")


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if isinstance(out, (tuple, list)):  # auxiliary heads (train mode only, but be safe)
        out = out[0]
    return out


def _to_classprobs(probs: torch.Tensor, k: int, wnids: list[str], names: list[str]) -> list[ClassProb]:
    k = max(1, min(int(k), probs.numel()))
    values, indices = probs.topk(k)
    return [ClassProb(index=int(i), wnid=wnids[int(i)], name=names[int(i)], prob=float(v))
            for v, i in zip(values.tolist(), indices.tolist(), strict=True)]


def topk(model: nn.Module, img: Image.Image, meta: dict, k: int = 5, *, image: str = "image",
         checkpoint: str = "checkpoint") -> PredictResult:
    """Top-``k`` classes of one RGB PIL image (open it with :func:`cnnviz.images.open_image`)."""
    return predict_batch(model, [img], meta, k, names=[image], checkpoint=checkpoint, batch_size=1)[0]


def predict_batch(model: nn.Module, images: Sequence[Image.Image], meta: dict, k: int = 5, *,
                  names: Sequence[str] | None = None, checkpoint: str = "checkpoint",
                  batch_size: int = 32) -> list[PredictResult]:
    """Top-``k`` for many images, ``batch_size`` at a time; each result's ``ms`` is its batch's time divided
    by the batch's size (one image per batch gives the single-image latency)."""
    _check_eval(model)
    if names is None:
        names = [f"image {i + 1}" for i in range(len(images))]
    if len(names) != len(images):
        raise ValueError(f"{len(images)} images but {len(names)} names")
    wnids, class_names = class_labels(meta)
    device = _device_of(model)
    results: list[PredictResult] = []
    for start in range(0, len(images), max(1, batch_size)):
        chunk = images[start:start + max(1, batch_size)]
        t0 = time.perf_counter()
        x = torch.cat([to_tensor_for(im, meta) for im in chunk]).to(device)
        with torch.inference_mode():
            probs = torch.softmax(_logits(model, x).float(), dim=1).cpu()
        ms = (time.perf_counter() - t0) * 1000 / len(chunk)
        for j, row in enumerate(probs):
            results.append(PredictResult(image=str(names[start + j]), checkpoint=checkpoint,
                                         predictions=_to_classprobs(row, k, wnids, class_names), ms=ms))
    return results


@dataclass
class Agreement:
    """How several models' top-1 answers for one image relate."""

    majority: str | None  # wnid most models chose (None without results)
    majority_name: str | None
    votes: int  # how many chose it
    total: int
    unanimous: bool
    agrees: dict[str, bool]  # checkpoint -> its top-1 is the majority class

    @property
    def has_majority(self) -> bool:
        """More than half of the models name the same class (4 models split 2-2 have none)."""
        return self.total > 1 and 2 * self.votes > self.total

    def agrees_with_majority(self, checkpoint: str) -> bool | None:
        """Whether this checkpoint's top-1 is the majority's class; None when there is no majority to agree
        with (one model, or no class named by more than half of them)."""
        return self.agrees.get(checkpoint) if self.has_majority else None

    @property
    def summary(self) -> str:
        if not self.total:
            return "no predictions"
        if self.total == 1:
            return "one model"
        if self.unanimous:
            return f"all {self.total} models agree: {self.majority_name}"
        if self.votes == 1:
            return f"the {self.total} models disagree: each names another class"
        return f"{self.votes} of {self.total} models say {self.majority_name}"


def agreement(results: Sequence[PredictResult]) -> Agreement:
    """Top-1 agreement across models for the same image. Classes are matched by wnid (models trained on
    different class lists can still agree). A tie is broken by the higher summed probability."""
    if not results:
        return Agreement(None, None, 0, 0, False, {})
    votes = Counter(r.top1.wnid for r in results)
    mass: dict[str, float] = {}
    label: dict[str, str] = {}
    for r in results:
        mass[r.top1.wnid] = mass.get(r.top1.wnid, 0.0) + r.top1.prob
        label.setdefault(r.top1.wnid, r.top1.name)
    majority = max(votes, key=lambda w: (votes[w], mass[w]))
    return Agreement(majority=majority, majority_name=label[majority], votes=votes[majority], total=len(results),
                     unanimous=len(votes) == 1, agrees={r.checkpoint: r.top1.wnid == majority for r in results})


def results_to_rows(results: Sequence[PredictResult]) -> list[dict]:
    """Flat rows (one per image, checkpoint and rank) for CSV and tables."""
    rows = []
    for r in results:
        for rank, p in enumerate(r.predictions, 1):
            rows.append({"image": r.image, "checkpoint": r.checkpoint, "rank": rank, "wnid": p.wnid,
                         "name": p.name, "prob": round(p.prob, 6), "ms": round(r.ms, 3)})
    return rows


def results_to_csv(results: Sequence[PredictResult]) -> str:
    """CSV of :func:`results_to_rows` (header included; quoting handles commas in class names)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["image", "checkpoint", "rank", "wnid", "name", "prob", "ms"])
    writer.writeheader()
    writer.writerows(results_to_rows(results))
    return buf.getvalue()


@dataclass
class Latency:
    """Single-image latency after warm-up, milliseconds."""

    median_ms: float
    mean_ms: float
    min_ms: float
    p90_ms: float
    repeats: int
    warmup: int
    threads: int

    def to_dict(self) -> dict:
        return asdict(self)


def measure_latency(model: nn.Module, meta: dict | None = None, *, input_size: int | None = None,
                    img: Image.Image | None = None, warmup: int = 5, repeats: int = 30,
                    include_preprocess: bool = True) -> Latency:
    """Time one-image predictions after ``warmup`` untimed runs. With ``meta`` and ``include_preprocess`` the
    timed path is what the page runs (resize, normalise, forward, softmax); otherwise the forward pass alone on
    a ``1 x 3 x input_size x input_size`` tensor (for models without cnnviz metadata, e.g. torchvision's)."""
    _check_eval(model)
    device = _device_of(model)
    if meta is not None and include_preprocess:
        if img is None:
            img = Image.new("RGB", (int(meta["input_size"]),) * 2, (120, 110, 100))

        def step() -> None:
            x = to_tensor_for(img, meta).to(device)
            with torch.inference_mode():
                torch.softmax(_logits(model, x).float(), dim=1)
    else:
        size = int(input_size or (meta or {}).get("input_size") or 64)
        x = torch.randn(1, 3, size, size, device=device)

        def step() -> None:
            with torch.inference_mode():
                _logits(model, x)
    for _ in range(max(0, warmup)):
        step()
    times = []
    for _ in range(max(1, repeats)):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return Latency(median_ms=statistics.median(times), mean_ms=statistics.fmean(times), min_ms=times[0],
                   p90_ms=times[min(len(times) - 1, int(0.9 * len(times)))], repeats=len(times),
                   warmup=max(0, warmup), threads=torch.get_num_threads())


@dataclass
class KnownClasses:
    """The classes one or more checkpoints can name (they share this class list)."""

    dataset: DatasetInfo
    checkpoints: list[str]
    wnids: list[str]
    names: list[str]

    def missing_subject(self) -> str | None:
        """The first of :data:`COMMON_SUBJECTS` that no class name mentions (None when all are classes)."""
        text = " ".join(self.names).lower()
        return next((w for w in COMMON_SUBJECTS if w not in text), None)

    def sentence(self) -> str:
        """What the models know, as a user should read it before trusting a top-5."""
        size = self.dataset.input_size
        seen = f", and see every image at {size}x{size} pixels" if size else ""
        text = (f"{', '.join(self.checkpoints)} can only name the {len(self.wnids)} classes they were trained on "
                f"({self.dataset.name}){seen}. Every image gets one of these classes, even an image that shows "
                "none of them")
        missing = self.missing_subject()
        return text + (f" (there is no '{missing}' class, for example)." if missing else ".")

    def search(self, query: str) -> list[dict[str, str]]:
        """Classes whose name or id contains ``query`` (case-insensitive), in output order; all when empty."""
        q = query.strip().lower()
        return [{"class": n, "id": w} for w, n in zip(self.wnids, self.names, strict=True)
                if not q or q in n.lower() or q in w.lower()]


def known_classes(models: Sequence[tuple[str, dict]]) -> list[KnownClasses]:
    """The class lists of ``(name, meta)`` checkpoints, one :class:`KnownClasses` per distinct list."""
    groups: dict[tuple, KnownClasses] = {}
    for name, meta in models:
        wnids, names = class_labels(meta)
        key = tuple(wnids)
        if key not in groups:
            groups[key] = KnownClasses(dataset_of(meta), [], wnids, names)
        groups[key].checkpoints.append(name)
    return list(groups.values())


def size_warning(img: Image.Image, input_size: int) -> str | None:
    """A sentence when ``img`` is much smaller than the model's input (shorter side under
    :data:`MUCH_SMALLER` of it), else None."""
    w, h = img.size
    if min(w, h) >= MUCH_SMALLER * input_size:
        return None
    return (f"This image is {w}x{h} pixels, much smaller than the {input_size}x{input_size} the model expects: it "
            f"is enlarged {input_size / min(w, h):.0f}x, so the network sees mostly interpolation and its "
            "top-5 below says little about the picture.")


@dataclass
class ImagePredictions:
    """One image through several checkpoints: results side by side and how they agree."""

    image: str
    results: list[PredictResult]
    agreement: Agreement
    errors: dict[str, str] = field(default_factory=dict)  # checkpoint -> why it could not predict
    warnings: list[str] = field(default_factory=list)  # e.g. an image much smaller than the input


def predict_across(models: Sequence[tuple[str, nn.Module, dict]], images: Sequence[tuple[str, Image.Image]],
                   k: int = 5, *, with_view: bool = True) -> list[ImagePredictions]:
    """Every image through every ``(name, model, meta)``. A model that fails on an input (e.g. one trained on
    other channels) is reported in ``errors`` and the others still answer. ``with_view`` stores what each
    network sees in ``result.extra["view"]`` (a PIL image)."""
    out = []
    for image_name, img in images:
        results, errors = [], {}
        for name, model, meta in models:
            try:
                r = topk(model, img, meta, k, image=image_name, checkpoint=name)
            except (RuntimeError, ValueError) as e:
                errors[name] = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
                continue
            if with_view:
                r.extra["view"] = network_view(img, meta)
            results.append(r)
        sizes = sorted({int(meta["input_size"]) for _, _, meta in models if meta.get("input_size")}, reverse=True)
        small = size_warning(img, sizes[0]) if sizes else None
        out.append(ImagePredictions(image=image_name, results=results, agreement=agreement(results), errors=errors,
                                    warnings=[small] if small else []))
    return out
