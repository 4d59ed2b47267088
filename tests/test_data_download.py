"""cnnviz.data sources: the resumable downloader (against a local HTTP server), zips (checks, zip-slip), folders."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cnnviz.data import DatasetError, download, find_dataset, load_split, prepare
from cnnviz.data import cache as cache_module
from cnnviz.data.zipsource import safe_member_path
from tests.data_helpers import label_of_colour, mini_tree, zip_tree


class _State:
    def __init__(self, payload: bytes):
        self.payload = payload
        self.cuts = 0  # responses still to cut in the middle
        self.honour_range = True
        self.status = 200
        self.requests: list[str | None] = []  # the Range header of each request


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1 serving ``state.payload`` at /file.zip, with Range support and cuts."""
    state = _State(b"")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            rng = self.headers.get("Range")
            state.requests.append(rng)
            if state.status != 200:
                self.send_error(state.status)
                return
            data, start = state.payload, 0
            m = re.match(r"bytes=(\d+)-$", rng or "")
            if m and state.honour_range:
                start = int(m.group(1))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.cuts > 0:
                state.cuts -= 1
                self.wfile.write(body[: len(body) // 2])  # then the connection drops mid-file
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/file.zip"
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _fast_retry(monkeypatch):
    monkeypatch.setenv("CNNVIZ_FAST_RETRY", "1")


def _payload(n: int = 300_000) -> tuple[bytes, str]:
    data = np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()
    return data, hashlib.md5(data).hexdigest()


# ----------------------------------------------------------------------------------------- downloader


def test_download_reports_progress_and_verifies(server, tmp_path):
    server.payload, md5 = _payload()
    calls = []
    dest = download(server.url, tmp_path / "t.zip", md5, progress=lambda *a: calls.append(a), chunk_size=16384)
    assert dest.read_bytes() == server.payload
    assert not (tmp_path / "t.zip.part").exists()
    got = [c for c in calls if c[0] == "download"]
    assert len(got) >= 10 and got[-1] == ("download", len(server.payload), len(server.payload))
    assert all(a[1] <= b[1] for a, b in zip(got, got[1:], strict=False))  # monotonic
    assert server.requests == [None]


def test_download_resumes_after_a_cut_connection_with_range(server, tmp_path):
    server.payload, md5 = _payload()
    server.cuts = 1
    dest = download(server.url, tmp_path / "t.zip", md5, retries=2, chunk_size=8192)
    assert dest.read_bytes() == server.payload
    assert server.requests[0] is None and len(server.requests) == 2
    resumed_at = int(re.match(r"bytes=(\d+)-", server.requests[1]).group(1))
    assert 0 < resumed_at < len(server.payload)  # it asked only for the rest


def test_interrupted_download_keeps_the_part_file_and_the_next_call_resumes(server, tmp_path):
    server.payload, md5 = _payload()
    server.cuts = 1
    with pytest.raises(DatasetError, match="run the same command again to resume") as e:
        download(server.url, tmp_path / "t.zip", md5, retries=0, chunk_size=8192)
    assert "interrupted" in str(e.value)
    part = tmp_path / "t.zip.part"
    assert 0 < part.stat().st_size < len(server.payload)
    assert not (tmp_path / "t.zip").exists()
    dest = download(server.url, tmp_path / "t.zip", md5, retries=0)
    assert dest.read_bytes() == server.payload
    assert server.requests[-1] == f"bytes={len(server.payload) // 2}-"


def test_a_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.payload, md5 = _payload()
    server.cuts, server.honour_range = 1, False
    assert download(server.url, tmp_path / "t.zip", md5, retries=1).read_bytes() == server.payload


def test_checksum_mismatch_is_rejected_with_a_clear_error(server, tmp_path):
    server.payload, _ = _payload()
    with pytest.raises(DatasetError, match="checksum mismatch") as e:
        download(server.url, tmp_path / "t.zip", "0" * 32)
    assert "expected 00000000" in str(e.value) and "deleted" in str(e.value)
    assert not (tmp_path / "t.zip").exists() and not (tmp_path / "t.zip.part").exists()


def test_http_error_says_how_to_continue(server, tmp_path):
    server.status = 404
    with pytest.raises(DatasetError, match="HTTP 404.*--source PATH_TO_ZIP"):
        download(server.url, tmp_path / "t.zip", None)


def test_no_connection_says_how_to_continue(tmp_path):
    with pytest.raises(DatasetError, match="could not download.*network.*--source PATH_TO_ZIP"):
        download("http://127.0.0.1:9/none.zip", tmp_path / "t.zip", None, retries=1, timeout=5)
    assert [p.name for p in tmp_path.iterdir()] == ["t.zip.lock"]  # no .part, no zip


def test_prepare_download_end_to_end(server, tmp_path):
    zip_path = zip_tree(mini_tree(tmp_path / "tree"), tmp_path / "served.zip")
    server.payload = zip_path.read_bytes()
    md5 = hashlib.md5(server.payload).hexdigest()
    stages = set()
    root = prepare("download", tmp_path / "data", progress=lambda s, d, t: stages.add(s), url=server.url, md5=md5)
    assert root == tmp_path / "data" / "tiny-imagenet-200"
    assert (tmp_path / "data" / "tiny-imagenet-200.zip").is_file()
    assert {"download", "decode train", "decode val"} <= stages
    assert load_split(root, "val").labels.tolist() == [2, 0, 1, 1, 2, 0, 2]


# ----------------------------------------------------------------------------------------------- zips


@pytest.mark.parametrize("name", ["tiny-imagenet-200/../../evil.txt", "/tmp/cnnviz-evil.txt", "..\\evil.txt",
                                  "C:/evil.txt", "tiny-imagenet-200/train/../../../evil.txt"])
def test_zip_slip_entries_are_refused(tmp_path, name):
    zip_path = zip_tree(mini_tree(tmp_path / "tree"), tmp_path / "evil.zip", extra={name: b"owned"})
    with pytest.raises(DatasetError, match="unsafe entry"):
        prepare(zip_path, tmp_path / "deep" / "data", extract_images=True)
    assert not list(tmp_path.rglob("evil.txt")) and not Path("/tmp/cnnviz-evil.txt").exists()
    assert not (tmp_path / "deep" / "data" / "tiny-imagenet-200").exists()  # refused before writing anything


def test_safe_member_path(tmp_path):
    assert safe_member_path(tmp_path, "a/b.txt") == (tmp_path / "a" / "b.txt").resolve()
    for bad in ("../x", "a/../../x", "/etc/passwd", "a\\..\\..\\x"):
        with pytest.raises(DatasetError):
            safe_member_path(tmp_path, bad)


def test_zip_without_val_annotations_is_refused(tmp_path):
    zip_path = zip_tree(mini_tree(tmp_path / "tree"), tmp_path / "t.zip", skip=("val/val_annotations.txt",))
    with pytest.raises(DatasetError, match="val/val_annotations.txt.*download it again"):
        prepare(zip_path, tmp_path / "data")


def test_not_a_zip_or_a_missing_source(tmp_path):
    bad = tmp_path / "half.zip"
    bad.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(DatasetError, match="partial download"):
        prepare(bad, tmp_path / "data")
    with pytest.raises(DatasetError, match="does not exist"):
        prepare(tmp_path / "nope.zip", tmp_path / "data")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="not an extracted Tiny ImageNet folder"):
        prepare(tmp_path / "empty", tmp_path / "data")


def test_sha256_file_beside_a_zip_is_checked(tmp_path):
    zip_path = zip_tree(mini_tree(tmp_path / "tree"), tmp_path / "t.zip")
    (tmp_path / "t.zip.sha256").write_text("ab" * 32 + "  t.zip\n")
    with pytest.raises(DatasetError, match="does not match the checksum"):
        prepare(zip_path, tmp_path / "data")
    (tmp_path / "t.zip.sha256").write_text(hashlib.sha256(zip_path.read_bytes()).hexdigest() + "  t.zip\n")
    assert prepare(zip_path, tmp_path / "data", splits=()).name == "tiny-imagenet-200"


def test_zip_source_reads_images_from_the_zip_and_matches_the_folder(tmp_path):
    tree = mini_tree(tmp_path / "tree", gray=("val_2.JPEG",))
    zip_path = zip_tree(tree, tmp_path / "t.zip", extra={"tiny-imagenet-200/test/images/test_0.JPEG": b"x"})
    root = prepare(zip_path, tmp_path / "data")
    assert find_dataset(tmp_path / "data") == root.resolve()
    for rel in ("wnids.txt", "words.txt", "val/val_annotations.txt", "train/n01000001/n01000001_boxes.txt",
                "source.json"):
        assert (root / rel).is_file(), rel
    assert not list(root.rglob("*.JPEG"))  # the JPEGs stay in the zip
    assert not (root / "test").exists()  # the unlabelled test split is ignored
    from_folder = prepare(tree, None)
    assert from_folder == tree.resolve()
    for split in ("train", "val"):
        a, b = load_split(root, split), load_split(tree, split)
        assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    val = load_split(root, "val")
    colours = [label_of_colour(i) for i in val.images]
    assert colours[:2] + colours[3:] == val.labels.tolist()[:2] + val.labels.tolist()[3:]  # val_2 is gray
    assert val.manifest["modes"].get("L") == 1 and (val.images[2][..., 0] == val.images[2][..., 2]).all()
    assert val.manifest["source"]["kind"] == "zip"


def test_extract_images_gives_the_full_official_layout(tmp_path):
    tree = mini_tree(tmp_path / "tree")
    root = prepare(zip_tree(tree, tmp_path / "t.zip"), tmp_path / "data", extract_images=True)
    assert len(list((root / "train").rglob("*.JPEG"))) == 12 and (root / "val" / "images" / "val_6.JPEG").is_file()
    assert not (root / "source.json").exists()
    assert np.array_equal(load_split(root, "train").images, load_split(tree, "train").images)


def test_process_pool_build_from_a_zip(tmp_path, monkeypatch):
    """The parallel path (workers reading zip members by offset) gives the same cache as the serial one."""
    tree = mini_tree(tmp_path / "tree", train_per_class=30)
    zip_path = zip_tree(tree, tmp_path / "t.zip")
    monkeypatch.setattr(cache_module, "POOL_THRESHOLD", 0)
    monkeypatch.setattr(cache_module, "CHUNK", 8)
    root = prepare(zip_path, tmp_path / "data", splits=("train",), workers=2)
    manifest = load_split(root, "train").manifest
    assert manifest["workers"] == 2 and manifest["count"] == 90
    serial = load_split(tree, "train")
    assert np.array_equal(load_split(root, "train").images, serial.images)


def test_corrupt_member_is_named(tmp_path):
    tree = mini_tree(tmp_path / "tree")
    (tree / "train" / "n02000002" / "images" / "n02000002_1.JPEG").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(DatasetError, match="n02000002_1.JPEG cannot be decoded"):
        load_split(tree, "train")
    with zipfile.ZipFile(zip_tree(tree, tmp_path / "t.zip")) as zf:
        assert "tiny-imagenet-200/wnids.txt" in zf.namelist()


def test_a_second_concurrent_download_is_refused(server, tmp_path):
    import fcntl

    server.payload, md5 = _payload()
    with open(tmp_path / "t.zip.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as another process downloading right now would
        with pytest.raises(DatasetError, match="another process is already downloading"):
            download(server.url, tmp_path / "t.zip", md5)
    assert download(server.url, tmp_path / "t.zip", md5).read_bytes() == server.payload
