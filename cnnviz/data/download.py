"""Download the official Tiny ImageNet zip: resumable (HTTP ``Range``), retried, md5-verified, one download
per destination at a time."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from cnnviz import paths
from cnnviz.data.errors import DatasetError, Progress

OFFICIAL_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
OFFICIAL_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
OFFICIAL_SIZE = 248_100_043
ZIP_NAME = "tiny-imagenet-200.zip"


def hash_file(path: Path, algos: tuple[str, ...] = ("md5",), progress: Progress | None = None) -> dict[str, str]:
    """Hex digests of a file (``progress("verify", bytes, total)``)."""
    hashes = {a: hashlib.new(a) for a in algos}
    total, done = path.stat().st_size, 0
    with path.open("rb") as f:
        while chunk := f.read(4 << 20):
            for h in hashes.values():
                h.update(chunk)
            done += len(chunk)
            if progress:
                progress("verify", done, total)
    return {a: h.hexdigest() for a, h in hashes.items()}


def download(url: str = OFFICIAL_URL, dest: str | Path | None = None, md5: str | None = OFFICIAL_MD5,
             progress: Progress | None = None, retries: int = 3, timeout: float = 60.0,
             chunk_size: int = 1 << 20) -> Path:
    """Download ``url`` to ``dest`` (default ``data_dir()/tiny-imagenet-200.zip``), resumably, and verify it.

    Bytes go to ``dest + ".part"``; an interrupted download (a cut connection, a kill) resumes from there with
    an HTTP ``Range`` request, automatically up to ``retries`` times and again on the next call. When the
    server ignores ``Range`` the download restarts from zero. ``dest`` appears only once the md5 matches; a
    mismatch deletes the bad file and raises :class:`DatasetError`. ``progress("download", bytes, total)``.
    """
    dest = Path(dest) if dest is not None else paths.data_dir() / ZIP_NAME
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.with_name(dest.name + ".lock"), "a") as lock:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock; two downloads at once are not guarded
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DatasetError(f"another process is already downloading to {dest}; wait for it to finish "
                                   f"(or stop it) and run the command again") from None
        return _download_locked(url, dest, md5, progress, retries, timeout, chunk_size)


def _download_locked(url: str, dest: Path, md5: str | None, progress: Progress | None, retries: int,
                     timeout: float, chunk_size: int) -> Path:
    if dest.is_file():
        if md5 is None or hash_file(dest, ("md5",))["md5"] == md5:
            return dest
        dest.replace(dest.with_name(dest.name + ".bad"))  # keep it for inspection, never trust it
    part = dest.with_name(dest.name + ".part")
    attempt, total, last_error = 0, 0, ""
    while True:
        offset = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"User-Agent": "cnnviz"})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                if offset and resp.status == 206:
                    m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
                    if not m or int(m.group(1)) != offset:
                        raise DatasetError(f"the server at {url} answered a resume request with the wrong "
                                           f"range; delete {part} and try again")
                    total = int(m.group(3)) if m.group(3) != "*" else 0
                    mode = "ab"
                else:  # 200: the whole file (the server ignores Range, or nothing to resume)
                    offset, mode = 0, "wb"
                    total = int(resp.headers.get("Content-Length") or 0)
                done = offset
                with part.open(mode) as f:
                    while True:
                        chunk = resp.read(chunk_size)
                        if not chunk:
                            break
                        f.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress("download", done, total)
                if total and done < total:
                    raise http.client.IncompleteRead(b"", total - done)
                break
        except urllib.error.HTTPError as e:
            if e.code == 416 and offset:  # range not satisfiable: the .part already holds everything
                break
            raise DatasetError(f"downloading {url} failed: HTTP {e.code} {e.reason}. Download the zip by hand "
                               f"and run `python -m cnnviz data prepare --source PATH_TO_ZIP`") from None
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, ConnectionError, OSError) as e:
            have = part.stat().st_size if part.exists() else 0
            last_error = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            attempt += 1
            if attempt > retries:
                if have == 0:
                    part.unlink(missing_ok=True)
                    raise DatasetError(f"could not download {url} ({last_error}); check the network connection, "
                                       f"or download the zip by hand and run `python -m cnnviz data prepare "
                                       f"--source PATH_TO_ZIP`") from None
                of = f" of {total / 1e6:.1f} MB" if total else ""
                raise DatasetError(f"the download of {url} was interrupted at {have / 1e6:.1f} MB{of} "
                                   f"({last_error}); the partial file {part} is kept: run the same command "
                                   f"again to resume") from None
            time.sleep(min(1.0 * attempt, 5.0) if not os.environ.get("CNNVIZ_FAST_RETRY") else 0.05)
    if md5 is not None:
        got = hash_file(part, ("md5",), progress)["md5"]
        if got != md5:
            size = part.stat().st_size
            part.unlink()
            raise DatasetError(f"checksum mismatch for {url}: md5 {got} ({size:,} bytes), expected {md5}. The "
                               f"damaged download was deleted; run the command again, or download the zip by "
                               f"hand and use `--source PATH_TO_ZIP`")
    os.replace(part, dest)
    return dest
