"""Write one benchmark's section of ``docs/benchmarks.md`` (between its markers), leaving the others alone."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = ("# Benchmarks\n\nMeasured numbers only, each with the machine it came from. Regenerate a section with "
          "`.venv/bin/python -m bench.<name>`; each section is rewritten by its own benchmark.\n")


def machine() -> str:
    """One line naming the machine: CPU model, cores, torch version, GPU if any."""
    from cnnviz.device import cpu_model

    cpu = cpu_model()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads{gpu}"


def shared_note(load: float | None = None, cores: int | None = None) -> str:
    """What the load average says about the run, read rather than assumed: the bench's own threads count in it,
    so only a load well above the core count means other jobs shared the machine."""
    load = os.getloadavg()[0] if load is None else load
    cores = cores or os.cpu_count() or 1
    if load > cores + 0.5:
        return (f"load average {load:.1f} on {cores} cores: other jobs shared the machine, so the times include "
                "waiting for a core (upper bounds)")
    return f"load average {load:.1f} on {cores} cores: no other heavy job ran beside it"


def measured_at() -> str:
    """Now, as the sections' stamps write it."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def write_section(name: str, body: str, *, on: str | None = None, at: str | None = None) -> Path:
    """Replace (or append) the section ``name`` of docs/benchmarks.md with ``body`` (Markdown).

    The stamp names *this* machine and now, unless the numbers were measured elsewhere: a device benchmark
    records :func:`machine` and :func:`measured_at` in its JSON there, and passes them here as ``on`` and ``at``
    when the section is written on the developer's machine."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text() if DOC.exists() else HEADER
    stamp = at or measured_at()
    block = f"<!-- bench:{name} -->\n{body.rstrip()}\n\n_Measured {stamp} on: {on or machine()}._\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)
    return DOC
