"""cnnviz.imagenet.download offline and in trouble: one clear message, never a hang (issue 14).

No test here reaches the internet: a local HTTP server plays download.pytorch.org, and the "offline" test asks
for a file that does not exist there, so a machine with a network gets an HTTP error instead of a download.
The time bounds are generous: they catch a hang (torch.hub alone would wait forever), not a slow machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import socket
import threading
import time

import pytest
import torch

from cnnviz import imagenet
from cnnviz.imagenet import download as fetch_mod


def _assert_manual_way(msg: str, entry) -> None:
    """The message names the file, the folder it goes in, and TORCH_HOME."""
    assert entry.file in msg and str(imagenet.cache_dir()) in msg and "TORCH_HOME" in msg


def test_offline_gives_one_message_quickly(monkeypatch):
    """This machine (and CI) has no route to download.pytorch.org: the real host, a file that is not there."""
    monkeypatch.setattr(fetch_mod, "weights_url",
                        lambda e: "https://download.pytorch.org/models/cnnviz-offline-check-00000000.pth")
    entry = imagenet.get_entry("vgg16")
    t0 = time.monotonic()
    with pytest.raises(imagenet.FetchError) as err:
        imagenet.fetch(entry, connect_timeout=3)
    assert time.monotonic() - t0 < 10
    _assert_manual_way(str(err.value), entry)
    assert "failed" in str(err.value) and not imagenet.cached_file(entry).exists()


def test_a_lookup_that_hangs_is_cut_at_the_timeout(monkeypatch):
    """A DNS lookup ignores socket timeouts; the probe's own deadline still returns."""
    monkeypatch.setattr(fetch_mod.urllib.request, "urlopen", lambda *a, **k: time.sleep(30))
    t0 = time.monotonic()
    with pytest.raises(imagenet.FetchError, match="no answer from download.pytorch.org within 1 s"):
        imagenet.fetch("resnet18", connect_timeout=1)
    assert time.monotonic() - t0 < 5


@pytest.fixture
def silent_server():
    """Accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/resnet18-f37072fd.pth"
    sock.close()


def test_a_silent_server_times_out(monkeypatch, silent_server):
    monkeypatch.setattr(fetch_mod, "weights_url", lambda e: silent_server)
    t0 = time.monotonic()
    with pytest.raises(imagenet.FetchError, match="timed out|no answer"):
        imagenet.fetch("resnet18", connect_timeout=1)
    assert time.monotonic() - t0 < 5


@pytest.fixture
def http_server():
    """A local server that serves ``files[path] = bytes``."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def _send(self, body: bool) -> None:
            data = files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self):  # noqa: N802 (http.server's names)
            self._send(False)

        def do_GET(self):  # noqa: N802
            self._send(True)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", files
    server.shutdown()


def _state_bytes() -> bytes:
    from tests.imagenet_helpers import torchvision_model

    buf = io.BytesIO()
    torch.save(torchvision_model("resnet18").state_dict(), buf)
    return buf.getvalue()


def test_fetch_downloads_with_torch_hub_into_its_cache_and_checks_the_hash(monkeypatch, http_server):
    base, files = http_server
    data = _state_bytes()
    prefix = hashlib.sha256(data).hexdigest()[:8]
    entry = dataclasses.replace(imagenet.get_entry("resnet18"), file=f"resnet18-{prefix}.pth")
    files["/w.pth"] = data
    monkeypatch.setattr(fetch_mod, "weights_url", lambda e: base + "/w.pth")
    seen = []
    path = imagenet.fetch(entry, progress=lambda done, total: seen.append((done, total)))
    assert path == imagenet.cache_dir() / entry.file and path.read_bytes() == data
    assert seen[-1] == (len(data), len(data))
    assert imagenet.load_entry(entry).model.arch == "resnet18"
    assert imagenet.fetch(entry) == path  # already there: nothing to do

    # a file whose SHA-256 does not start with the name's prefix is refused and not kept
    bad = dataclasses.replace(entry, file="resnet18-00000000.pth")
    with pytest.raises(imagenet.FetchError, match="invalid hash value"):
        imagenet.fetch(bad)
    assert not (imagenet.cache_dir() / bad.file).exists()
    assert not list(imagenet.cache_dir().glob("*.partial"))


def test_a_stalled_download_is_abandoned(monkeypatch):
    monkeypatch.setattr(fetch_mod, "weights_url", lambda e: "http://127.0.0.1:9/never.pth")
    monkeypatch.setattr(fetch_mod, "probe", lambda url, timeout: 1000)

    def stalls(url, dst, hash_prefix, progress):
        with open(dst + ".0.partial", "wb") as f:
            f.write(b"x" * 10)
        time.sleep(30)

    monkeypatch.setattr(fetch_mod.torch.hub, "download_url_to_file", stalls)
    t0 = time.monotonic()
    with pytest.raises(imagenet.FetchError, match="stalled: no data for 1 s") as err:
        imagenet.fetch("resnet34", stall_timeout=1)
    assert time.monotonic() - t0 < 6
    _assert_manual_way(str(err.value), imagenet.get_entry("resnet34"))
