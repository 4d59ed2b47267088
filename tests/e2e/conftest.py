"""Browser tests: a real ``streamlit run app.py`` server driven by Playwright in Debian's Chromium.

Fixtures:
* ``app_server(env=...)``: starts the app on a free loopback port, with its own checkpoints/data folders,
  waits until it answers, yields the base URL and kills it afterwards (server log printed on failure);
* ``page``: a fresh Chromium page (``--no-sandbox --disable-gpu --disable-background-networking``);
* ``wait_idle(page)``: waits on Streamlit's own signal that the script finished running;
* ``choose(page, label, option)``: picks an option in a selectbox, retrying a click that lost a re-render race;
* ``shot(page, name)``: saves a screenshot under the test's temporary folder and returns its path.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    def __init__(self, base: Path, env: dict[str, str] | None = None, root: Path = REPO):
        self.root = root  # the checkout whose app.py runs (a benchmark may run an older commit's)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.checkpoints = base / "checkpoints"
        self.data = base / "data"
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        self.log_path = base / "streamlit.log"
        self.env = {**os.environ, "CNNVIZ_CHECKPOINTS": str(self.checkpoints), "CNNVIZ_DATA": str(self.data),
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        """The server's command line (a subclass may leave flags to the project's config.toml)."""
        return [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port),
                "--server.address", "127.0.0.1", "--server.headless", "true"]

    def start(self, timeout: float = 90) -> AppServer:
        log = open(self.log_path, "ab")  # noqa: SIM115 (kept open for the server's lifetime)
        self.proc = subprocess.Popen(self.command(), cwd=self.root, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"streamlit did not answer within {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def _browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it when run as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def app_server(tmp_path, request):
    """Factory: ``server = app_server(env={...})`` starts a server (stopped after the test)."""
    servers: list[AppServer] = []

    def start(env: dict[str, str] | None = None, base: Path | None = None) -> AppServer:
        server = AppServer(base or tmp_path / f"app{len(servers)}", env).start()
        servers.append(server)
        return server

    yield start
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for s in servers:
        s.stop()
        if failed:
            print(f"\n--- streamlit log ({s.log_path}) ---\n{s.log()[-5000:]}")


@pytest.fixture
def page(_browser, tmp_path, request):
    context = _browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.js_errors = errors
    yield pg
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        path = tmp_path / "failure.png"
        try:
            pg.screenshot(path=str(path), full_page=True)
            print(f"\nscreenshot of the failure: {path}")
        except Exception:  # noqa: BLE001 - the page may be gone
            pass
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def wait_idle(page, timeout: float = 60_000) -> None:
    """Wait until Streamlit reports that the script has finished running (its own signal, no sleeps)."""
    page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=timeout)


def choose(page, label: str, option, *, type_text: str | None = None, attempts: int = 4) -> None:
    """Pick ``option`` (exact text, or a compiled regex) in the selectbox whose label contains ``label``.

    Why the retries: Streamlit's option list is a virtualised React list that re-renders while typed text filters
    it and while a rerun lands; a click can then wait on a node that was just detached ("element is not stable")
    until the long default timeout. CI saw exactly that once, so each try gets a short timeout, then the list is
    closed with Escape and opened again. A real failure (the option never appears) still fails after the last try.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = page.get_by_test_id("stSelectbox").filter(has_text=label).first
    exact = isinstance(option, str)
    for attempt in range(attempts):
        wait_idle(page)
        box.click()
        if type_text:
            page.keyboard.type(type_text)
        try:
            page.get_by_role("option", name=option, exact=exact).first.click(timeout=15_000)
            break
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise
            page.keyboard.press("Escape")
    wait_idle(page)


def assert_no_errors(page) -> None:
    """No exception box, error element or traceback text on the page."""
    assert page.locator("[data-testid=stException]").count() == 0, page.locator("[data-testid=stException]").first.inner_text()
    body = page.locator("body").inner_text()
    assert "Traceback (most recent call last)" not in body


def shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path
