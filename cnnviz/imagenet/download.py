"""Download one entry's weights with torch.hub's own downloader, into torch.hub's cache, without hanging.

::

    fetch("vgg16", progress=lambda done, total: ...)   # -> Path of the cached file

The file goes where torchvision looks for it (:func:`cnnviz.imagenet.weights.cached_file`) under its own
name, and ``torch.hub.download_url_to_file`` checks the SHA-256 prefix in that name, so a damaged download is
never kept. We add only what torch.hub lacks, time limits (it waits forever for a silent server):

* a first request (``connect_timeout``, 10 s) that must answer before anything is written; it runs in a
  daemon thread joined with a deadline, so even a DNS lookup that hangs cannot hold the caller;
* while downloading, the partial file must grow at least once every ``stall_timeout`` seconds (60 s).

Any failure raises :class:`FetchError` whose message names the file, the folder it belongs in, and
``TORCH_HOME``: the way to install it by hand on a machine without a network. A download abandoned at a
stall goes on in its daemon thread until the process ends or the server answers; torch.hub writes to a
``.partial`` file and renames it only when complete and checked, so nothing half-written is ever loaded.
"""

from __future__ import annotations

import hashlib
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import torch

from cnnviz.checkpoint import CheckpointError
from cnnviz.imagenet.entries import ImageNetEntry, get_entry
from cnnviz.imagenet.weights import cached_file, missing_message, weights_url

CONNECT_TIMEOUT_S = 10.0
STALL_TIMEOUT_S = 60.0
POLL_S = 0.25


class FetchError(CheckpointError):
    """The weights could not be downloaded; the message says how to install them by hand."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"the server answered HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"no connection: {exc.reason}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _in_thread(work: Callable[[], object]) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    thread = threading.Thread(target=run, name="cnnviz-imagenet-fetch", daemon=True)
    thread.start()
    return thread, box


def probe(url: str, timeout: float = CONNECT_TIMEOUT_S) -> int | None:
    """The size in bytes the server announces for ``url`` (None when it does not say). Raises OSError (or
    ``urllib.error.URLError``) when there is no answer within ``timeout`` seconds, DNS included."""
    def head() -> int | None:
        req = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "torch.hub"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            size = r.headers.get("Content-Length")
            return int(size) if size and size.isdigit() else None

    thread, box = _in_thread(head)
    thread.join(timeout + 1.0)
    if thread.is_alive():
        raise TimeoutError(f"no answer from {urlparse(url).hostname} within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def fetch(entry: ImageNetEntry | str, *, connect_timeout: float = CONNECT_TIMEOUT_S,
          stall_timeout: float = STALL_TIMEOUT_S,
          progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download ``entry``'s weights into torch.hub's cache (nothing to do when the file is there) and return
    its path. ``progress(done_bytes, total_bytes_or_None)`` is called while it downloads. Raises
    :class:`FetchError` (offline, refused, too slow, or a failed checksum) with the manual way in the message."""
    entry = get_entry(entry) if isinstance(entry, str) else entry
    dst = cached_file(entry)
    if dst.is_file() and dst.stat().st_size > 0:
        return dst
    url = weights_url(entry)
    try:
        total = probe(url, connect_timeout)
    except (OSError, ValueError) as e:  # URLError and TimeoutError are OSErrors
        raise FetchError(missing_message(entry, f"downloading {url} failed: {_reason(e)}")) from e
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FetchError(f"{dst.parent} cannot be created ({e.strerror or e}); set TORCH_HOME to a writable "
                         "folder") from e
    hash_prefix = torch.hub.HASH_REGEX.search(entry.file).group(1)
    thread, box = _in_thread(lambda: torch.hub.download_url_to_file(url, str(dst), hash_prefix, progress=False))
    done, last_change = -1, time.monotonic()
    while thread.is_alive():
        thread.join(POLL_S)
        now_done = sum(p.stat().st_size for p in dst.parent.glob(dst.name + ".*.partial") if p.is_file())
        if now_done != done:
            done, last_change = now_done, time.monotonic()
            if progress is not None:
                progress(done, total)
        elif time.monotonic() - last_change > stall_timeout:
            raise FetchError(missing_message(entry, f"the download from {url} stalled: no data for "
                                                    f"{stall_timeout:g} s"))
    if "error" in box:
        raise FetchError(missing_message(entry, f"downloading {url} failed: {_reason(box['error'])}")) from box["error"]
    if progress is not None and total:
        progress(total, total)
    return dst


def cached_file_ok(entry: ImageNetEntry | str) -> bool:
    """Whether the cached file's SHA-256 starts with the prefix in its name, as torch.hub checks a download
    (``vgg16-397923af.pth``). Reads the whole file: about a second per 500 MB."""
    entry = get_entry(entry) if isinstance(entry, str) else entry
    digest = hashlib.sha256()
    with open(cached_file(entry), "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest().startswith(torch.hub.HASH_REGEX.search(entry.file).group(1))
