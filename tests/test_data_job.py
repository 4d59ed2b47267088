"""Tiny ImageNet prepared by a detached background process (cnnviz.data.job): real worker processes, a real zip
in the real layout, and a local HTTP server that sends the download slowly, so that a stop lands mid-download."""

from __future__ import annotations

import http.server
import os
import re
import threading
import time
from pathlib import Path

import pytest

from cnnviz import paths
from cnnviz.data import DatasetError, find_dataset
from cnnviz.data import job as data_job
from cnnviz.fsutil import atomic_write_json, is_locked, try_lock
from tests._wait import wait_until
from tests.data_helpers import mini_tree, zip_tree


def _wait(predicate, timeout: float = 120.0, what: str = "the preparation"):
    log = paths.data_dir() / data_job.LOG_FILE
    return wait_until(predicate, timeout, what, lambda: f"; status {data_job.read_job()}; "
                                                        f"log: {log.read_text() if log.exists() else '(none)'}")


def _finished():
    job = data_job.read_job()
    return job if job is not None and not job.active else None


@pytest.fixture
def mini_zip(tmp_path) -> Path:
    return zip_tree(mini_tree(tmp_path / "tree"), tmp_path / "tiny-imagenet-200.zip")


def test_a_zip_is_prepared_in_the_background_and_the_pages_find_it(mini_zip):
    job = data_job.start(mini_zip)
    assert job.active and job.source == str(mini_zip) and isinstance(job.pid, int)
    done = _wait(_finished)
    assert done.state == "done", done.message
    assert find_dataset(None) == Path(done.dataset_root)
    assert (done.stage, done.done) == ("decode val", done.total) and done.total > 0  # its last stage, complete
    _wait(lambda: not is_locked(paths.data_dir() / data_job.LOCK_FILE), 30, "the lock's release at exit")


def test_a_bad_source_is_refused_at_once_and_starts_nothing(tmp_path):
    import zipfile

    other = tmp_path / "holiday.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("beach.jpg", b"not a dataset")
    (tmp_path / "empty").mkdir()
    cases = {"": "give the path", str(tmp_path / "nowhere.zip"): "nowhere.zip does not exist",
             str(other): "holiday.zip", str(tmp_path / "empty"): "is not an extracted Tiny ImageNet folder"}
    for source, message in cases.items():
        with pytest.raises(DatasetError, match=re.escape(message)):
            data_job.start(source)
    assert data_job.read_job() is None  # no status: nothing was started


def test_a_second_preparation_is_refused_while_one_runs(mini_zip):
    folder = paths.data_dir()
    fd = try_lock(folder / data_job.LOCK_FILE)  # stands in for a running worker: it holds the lock
    try:
        atomic_write_json(folder / data_job.STATUS_FILE, {"state": "running", "source": "download",
                                                          "stage": "download", "done": 5, "total": 10})
        with pytest.raises(DatasetError, match=r"already being prepared \(from download\)"):
            data_job.start(mini_zip)
        assert data_job.read_job().active
    finally:
        os.close(fd)


def test_a_worker_that_died_without_a_word_reads_as_failed():
    """A status that says running while nobody holds the lock: a kill -9 or a reboot. The page must not show a
    progress bar that never moves."""
    atomic_write_json(paths.data_dir() / data_job.STATUS_FILE, {"state": "running", "stage": "decode train",
                                                                "done": 100, "total": 1000})
    job = data_job.read_job()
    assert (job.state, job.active) == ("failed", False) and "prepare again" in job.message
    (paths.data_dir() / data_job.STATUS_FILE).write_text("{torn")
    assert data_job.read_job() is None


def test_a_failure_in_the_worker_is_a_message_in_the_status(mini_zip):
    """A zip whose .sha256 beside it disagrees (a damaged copy) passes the quick check and fails in the
    worker: the status says so in words, and the lock is released."""
    (mini_zip.parent / (mini_zip.name + ".sha256")).write_text("0" * 64 + "  tiny-imagenet-200.zip\n")
    data_job.start(mini_zip)
    job = _wait(_finished)
    assert job.state == "failed" and "does not match the checksum" in job.message
    assert find_dataset(None) is None


class _Slow:
    """A local HTTP server for the download: ``delay`` seconds between 16 KiB chunks, honouring Range."""

    def __init__(self, payload: bytes):
        self.payload, self.delay, self.ranges = payload, 0.02, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                start = int(m.group(1)) if (m := re.match(r"bytes=(\d+)-$", rng or "")) else 0
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
                self.send_header("Content-Length", str(len(payload) - start))
                self.end_headers()
                try:
                    for i in range(start, len(payload), 16384):
                        self.wfile.write(payload[i:i + 16384])
                        time.sleep(outer.delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the worker was stopped mid-download

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tiny-imagenet-200.zip"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_stop_ends_a_download_that_a_second_start_resumes(mini_zip):
    """Stop mid-download: the status says stopped (and how to continue), the partial file stays and the lock
    is free. Prepare again: the download continues from there (an HTTP Range request) and the data is ready."""
    import hashlib

    # 4 MiB of incompressible padding: the download reports progress once a MiB, and takes about 5 s here
    padded = zip_tree(mini_tree(mini_zip.parent / "tree"), mini_zip.parent / "padded.zip",
                      extra={"tiny-imagenet-200/padding.bin": os.urandom(4 << 20)})
    payload = padded.read_bytes()
    slow = _Slow(payload)
    try:
        md5 = hashlib.md5(payload).hexdigest()
        data_job.start("download", url=slow.url, md5=md5)
        _wait(lambda: (j := data_job.read_job()) and j.stage == "download" and j.done >= 1 << 20,
              what="the first MiB of the download")
        assert data_job.stop()
        job = data_job.read_job()
        assert job.state == "stopped" and "resumes" in job.message
        part = paths.data_dir() / "tiny-imagenet-200.zip.part"
        kept = part.stat().st_size
        assert 0 < kept < len(payload)
        assert not is_locked(paths.data_dir() / data_job.LOCK_FILE)
        assert data_job.stop() is False  # nothing runs now

        slow.delay = 0.0
        data_job.start("download", url=slow.url, md5=md5)
        job = _wait(_finished)
        assert job.state == "done", job.message
        assert slow.ranges[-1] is not None and int(slow.ranges[-1][6:-1]) >= kept  # "bytes=N-"
        assert find_dataset(None) is not None
        assert not (paths.data_dir() / "tiny-imagenet-200.zip.part").exists()  # became the verified zip
    finally:
        slow.server.shutdown()


def test_progress_is_written_twice_a_second_at_most_and_always_at_a_stage_end(monkeypatch, tmp_path):
    writes = []
    monkeypatch.setattr(data_job, "_update", lambda folder, **kw: writes.append((kw["stage"], kw["done"])))
    report = data_job._StatusWriter(tmp_path)
    report("decode train", 0, 100)
    for k in range(1, 100):
        report("decode train", k, 100)  # well within WRITE_EVERY_S: none of these is written ...
    report("decode train", 100, 100)  # ... but the end of the stage is
    report("decode val", 0, 10)
    assert writes == [("decode train", 0), ("decode train", 100), ("decode val", 0)]


def test_the_progress_bar_text_names_the_stage_its_units_and_the_time_taken():
    from cnnviz.views.training import prepare_progress

    def job(stage, done, total, started=None):
        return data_job.PrepareJob(state="running", stage=stage, done=done, total=total, started=started)

    assert prepare_progress(job("download", 124_000_000, 248_000_000)) == (
        0.5, "downloading the official zip: 124.0 / 248.0 MB")
    assert prepare_progress(job("decode train", 52_000, 100_000))[1] == "decode train: 52,000 / 100,000 images"
    assert prepare_progress(job("extract", 3, 4))[1] == "extracting the zip: 3 / 4 files"
    assert prepare_progress(job("decode val", 10, 0)) == (0.0, "decode val: 10 images")
    assert prepare_progress(job("starting", 0, 0, started=time.time() - 75)) == (0.0, "starting (1m 15s)")


def test_the_training_page_offers_tiny_imagenet_only_once_its_preparation_has_ended(mini_zip):
    """The labels are extracted in the first seconds and the images decoded at the end: while a preparation
    runs, the Dataset box must not offer a dataset whose cache is half built. A root whose cache was never built
    (a preparation cut short) still counts its images from its zip, so the epoch estimate is not "x 0 images"."""
    from cnnviz.data import prepare
    from cnnviz.views.training import DataChoice, dataset_choices, dataset_size
    from tests.data_helpers import WNIDS

    root = prepare(mini_zip, splits=())  # labels only: what the worker has done after its first seconds
    assert find_dataset(None) == root
    fd = try_lock(paths.data_dir() / data_job.LOCK_FILE)
    try:
        atomic_write_json(paths.data_dir() / data_job.STATUS_FILE, {"state": "running", "stage": "decode train"})
        assert [c.synthetic for c in dataset_choices()] == [True]
    finally:
        os.close(fd)
    assert [c.synthetic for c in dataset_choices()] == [False, True]  # (the status now reads as failed)
    train, val = dataset_size(DataChoice("Tiny ImageNet", "auto", False))
    assert train == 4 * len(WNIDS) and val > 0


def test_data_info_says_a_background_preparation_is_running(mini_zip, capsys):
    """`python -m cnnviz data info` mid-preparation: the caches it lists are not complete yet, and it says so."""
    from cnnviz.__main__ import main as cli_main
    from cnnviz.data import prepare

    prepare(mini_zip, splits=())
    fd = try_lock(paths.data_dir() / data_job.LOCK_FILE)
    try:
        atomic_write_json(paths.data_dir() / data_job.STATUS_FILE, {
            "state": "running", "source": "download", "stage": "decode train", "done": 52_000, "total": 100_000,
            "pid": 4321})
        cli_main(["data", "info"])
    finally:
        os.close(fd)
    out = capsys.readouterr().out
    assert "a background preparation is running (pid 4321, from download): decode train 52,000 / 100,000" in out
    cli_main(["data", "info"])
    assert "background preparation" not in capsys.readouterr().out  # ended (here: its holder let go)
