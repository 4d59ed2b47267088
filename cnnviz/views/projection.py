"""The deconvnet figure of the Visualize page (ZF section 2.1), its caption, and the receptive-field boxes that
the page's figures outline. ``cnnviz.views.visualize`` re-exports all of it for the pages and the CLI.

Where the deconvnet projection of a unit is the same for every image (measured: ``cnnviz.viz.deconv``'s
docstring says when and why), the figure says so and adds guided backprop of the same unit, which does depend
on the image. Without it, Visualize's default (ResNet-18 with the tiny stem, its last stage) showed one fixed
checkerboard for every image and every upload, and nothing said that the picture did not come from the image.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn as nn

from cnnviz.viz import render
from cnnviz.viz.deconv import (
    Projection,
    deconvnet,
    guided_backprop,
    is_same_for_every_image,
    same_picture,
    top_channels,
)
from cnnviz.viz.maps import unit_region
from cnnviz.viz.session import Subject


def box_text(box: tuple[int, int, int, int]) -> str:
    """An input box ``(top, left, bottom, right)`` (as :func:`cnnviz.viz.maps.unit_region` gives it) written
    the way the page labels boxes: ``(x0, y0, x1, y1)``, in the model's input pixels, x1 and y1 exclusive."""
    top, left, bottom, right = (int(v) for v in box)
    return f"(x0, y0, x1, y1) = ({left}, {top}, {right}, {bottom})"


def covers_whole_image(box: tuple[int, int, int, int], input_size: tuple[int, int, int]) -> bool:
    """True when the box is the whole input (every unit of the layer then sees all of the image)."""
    top, left, bottom, right = box
    return top <= 0 and left <= 0 and bottom >= input_size[1] and right >= input_size[2]


def projection_figure(seen: np.ndarray, proj: np.ndarray, box: tuple[int, int, int, int] | None = None,
                      cell: int = 192, guided: np.ndarray | None = None) -> np.ndarray:
    """The input (with the unit's receptive field outlined) beside its deconvnet projection (0 = grey), and
    beside that the same unit's guided backprop when ``guided`` is given."""
    left = seen if box is None else render.draw_box(seen, box)
    panels, titles = [left, render.to_uint8(proj, "symmetric")], ["what the network saw", "deconvnet projection"]
    if guided is not None:
        panels.append(render.to_uint8(guided, "symmetric"))
        titles.append("guided backprop, same unit")
    return render.labelled(panels, titles, cell=cell)


@dataclass
class DeconvFigure:
    """One unit's deconvnet projection, drawn beside the input (and guided backprop where it adds something)."""

    projection: Projection  # its same_for_every_image is measured
    image: np.ndarray  # the figure, uint8
    box: tuple[int, int, int, int]  # the unit's receptive field in input pixels (top, left, bottom, right)
    guided: Projection | None  # guided backprop of the same unit, when the figure shows it

    def caption(self, subject: Subject) -> str:
        return deconv_caption(subject, self.projection, self.box, guided=self.guided is not None)


def deconv_figure(subject: Subject, x: torch.Tensor, seen: np.ndarray, layer: str, channel: int | None = None,
                  method: str = "auto", with_guided: bool = False) -> DeconvFigure:
    """ZF's deconvnet projection of ``channel``'s strongest activation (default: the channel with the strongest
    activation), beside the input.

    Where the projection is the same for every image and guided backprop of the same unit shows something
    else, that is a third panel: the picture of this unit that does come from the image. (For a first-layer
    unit both are its filter; a third copy would say nothing.) ``with_guided`` adds that panel in any case,
    to compare the two methods."""
    if channel is None:
        channel = top_channels(subject.model, x, layer, 1)[0][0]
    p = deconvnet(subject.model, x, layer, int(channel), method=method)
    p = replace(p, same_for_every_image=is_same_for_every_image(subject.model, x, p))
    wanted = with_guided or p.same_for_every_image
    guided = guided_backprop(subject.model, x, layer, p.channel, p.position) if wanted else None
    if guided is not None and not with_guided and same_picture(guided.image, p.image, tolerance=1e-3):
        guided = None
    box = unit_region(subject.model, layer, *p.position, subject.input_size)
    fig = projection_figure(seen, p.image, box, guided=None if guided is None else guided.image)
    return DeconvFigure(p, fig, box, guided)


def has_lrn(model: nn.Module) -> bool:
    """True when the model has a local response normalisation layer (AlexNet, ZFNet, GoogLeNet; not ResNet)."""
    return any("LocalResponseNorm" in type(m).__name__ for m in model.modules())


def deconv_caption(subject: Subject, proj: Projection, box: tuple[int, int, int, int], guided: bool = False) -> str:
    """What a deconvnet figure shows: the unit, its receptive field, the method; LRN is mentioned only for
    models that have one, a receptive field that covers the whole image is said to, and so is a projection
    that is the same for every image (with what the guided-backprop panel, when ``guided``, shows instead)."""
    text = (f"{proj.layer}[{proj.channel}] unit (row, column) {proj.position} = {proj.value:.3g}; its receptive field "
            f"{box_text(box)} in the model's input pixels is outlined; {proj.method} deconvnet")
    if has_lrn(subject.model):
        text += " (LRN passes the signal unchanged, as in ZF)"
    if covers_whole_image(box, subject.input_size):
        text += "; this unit's receptive field covers the whole image"
    note = fixed_projection_note(proj, guided) or (GUIDED_NOTE if guided else None)
    return subject.caption(text + (f". {note}" if note else ""))


def fixed_projection_note(proj: Projection, guided: bool = False) -> str | None:
    """Sentences for a projection that is the same picture for every image (measured); None otherwise."""
    if not proj.same_for_every_image:
        return None
    text = (f"This projection is the same for every image: no max-pooling lies below {proj.layer}, and the "
            "deconvnet's way back sees the image only through max-pool switches (its ReLUs rectify the signal "
            "itself). Only which unit is projected, and how strongly, comes from this image")
    if guided:
        text += (". Guided backprop (right; Springenberg et al. 2015) also stops the signal where the forward ReLU "
                 "was off, so it shows what in this image drove the unit")
    return text + "."


GUIDED_NOTE = ("Guided backprop (right; Springenberg et al. 2015): the deconvnet's way back, except that each ReLU "
               "also stops the signal where its forward input was off, so the image gates it at every ReLU, not only at "
               "the max-pools.")


def top9_table(figure, split=None):
    """The numbers behind ZF Fig. 2's nine hits, strongest first (row-major in the figure): the activation, the
    val image it came from and that image's true class (when the split is given), and where the receptive field
    lies, so a reader can tell what the unit responds to without guessing from 32-pixel crops."""
    import pandas as pd

    rows = []
    for rank, (value, image, box) in enumerate(zip(figure.values, figure.images, figure.boxes, strict=True), 1):
        row = {"rank": rank, "activation": round(float(value), 4), "val image": int(image)}
        if split is not None:
            row["true class"] = str(split.class_names[int(split.labels[int(image)])])
        row["receptive field"] = box_text(box)
        rows.append(row)
    return pd.DataFrame(rows)


def top9_caption(layer: str, figure) -> str:
    """What ZF Fig. 2 (a :class:`cnnviz.viz.top9.Top9Figure`) shows, and why its projections are guided
    backprop's when the deconvnet's would be one picture for every image."""
    if figure.projected_by != "guided backprop":
        return "deconvnet projections (left) and receptive-field patches (right), ZF Fig. 2"
    return ("guided backprop projections (left) and receptive-field patches (right), after ZF Fig. 2. Not the "
            f"deconvnet's: no max-pooling lies below {layer}, so it projects this unit to the same picture from "
            "every image (nine copies of one picture). Guided backprop (Springenberg et al. 2015) also stops the "
            "signal where the forward ReLU was off, so each projection comes from its image")
