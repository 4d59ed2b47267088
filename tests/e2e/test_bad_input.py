"""Bad input through the real pages in headless Chromium, and the running server's security defaults (issue 6).

One server for the module, started the way a user starts it (``streamlit run app.py``, no ``--server.address``:
.streamlit/config.toml decides). Each bad upload gets a clear message naming the file (escaped), the good
files uploaded with it still predict, and the server keeps serving afterwards. Unit-level checks of the same
files are in tests/test_predict_images.py and tests/test_security.py.
"""

from __future__ import annotations

import http.client
import io
import os
import struct
import sys
import urllib.parse
import urllib.request
import zlib

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.e2e.conftest import REPO, AppServer, assert_no_errors, shot, wait_idle
from tests.predict_helpers import image_bytes, make_checkpoint

pytestmark = pytest.mark.e2e

BARS = "[data-testid=stPlotlyChart] .barlayer .point"
UPLOAD = "[data-testid=stFileUploaderDropzoneInput]"


class DefaultAddressServer(AppServer):
    """``streamlit run app.py --server.port N`` only: the address comes from the project's config.toml."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("badinput")
    make_checkpoint(base / "checkpoints" / "starter" / "tiny", arch="lenet5", seed=1)
    srv = DefaultAddressServer(base).start()
    yield srv
    srv.stop()
    log = srv.log()
    # error details are logged on the server, never shown on the page: the log is where they go
    print(f"\n--- streamlit log ({srv.log_path}), last lines ---\n{log[-2000:]}")


# ------------------------------------------------------------------------------------------------ files
def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width x height`` pixels."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + \
        chunk(b"IEND", b"")


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _photo() -> Image.Image:
    """An upright landscape picture with a clear top (red) and bottom (blue): orientation matters."""
    arr = np.zeros((80, 120, 3), np.uint8)
    arr[:40, :, 0] = 230
    arr[40:, :, 2] = 230
    arr[:, :20, 1] = 200
    return Image.fromarray(arr)


def _exif_rotated() -> tuple[bytes, bytes, bytes]:
    """(upright JPEG, the same photo stored sideways with EXIF orientation 6, the sideways pixels without EXIF)."""
    upright = _photo()
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera held sideways stores
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    return (_encode(upright, "JPEG", quality=95), _encode(stored, "JPEG", quality=95, exif=exif.tobytes()),
            _encode(stored, "JPEG", quality=95))


def _palette_transparent() -> bytes:
    img = Image.new("P", (50, 30), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (25, 0, 50, 30))
    return _encode(img, "PNG", transparency=0)


BAD = {  # name -> (bytes, words of the message)
    "empty.png": (b"", "the file is empty"),
    "random.png": (np.random.default_rng(0).bytes(4096), "not a supported image"),
    "truncated.jpg": (image_bytes("JPEG", (400, 300))[:3000], "damaged or truncated"),
    # 8000 x 7500 = 60 Mpx: under Pillow's own warning (89 Mpx), so only our cap can refuse it
    "bomb.png": (_bomb_png(8000, 7500), "60 megapixels; the limit is 40"),
    "tiff-renamed.jpg": (_encode(Image.new("RGB", (20, 20), "green"), "TIFF"), "not a supported image"),
    "../../etc/passwd.png": (b"root:x:0:0:root:/root:/bin/bash\n", "not a supported image"),
    "*bold* [link](http://evil.example).png": (b"GIF89a", "not a supported image"),  # Markdown in a name: shown as typed
}


def _files(items: dict[str, bytes]) -> list[dict]:
    return [{"name": n, "mimeType": "image/png" if n.endswith(".png") else "image/jpeg", "buffer": b}
            for n, b in items.items()]


def _view_pixels(page, heading: str) -> np.ndarray:
    """The 'as the network sees it' image shown under the heading of one uploaded file."""
    img = page.locator(f"xpath=//h3[contains(normalize-space(.), '{heading}')]/following::img[1]")
    expect(img).to_be_visible()
    src = img.get_attribute("src")
    data = page.request.get(src if src.startswith("http") else page.url.split("/predict")[0] + src).body()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32)


# ------------------------------------------------------------------------------------------------ tests
def test_every_bad_upload_gets_a_message_and_the_good_ones_still_predict(server, page, tmp_path):
    page.goto(server.url + "/predict")
    wait_idle(page)
    expect(page.get_by_text("starter/tiny").first).to_be_visible()
    upright, rotated, sideways = _exif_rotated()
    good = {"cmyk.jpg": image_bytes("JPEG", (80, 80), mode="CMYK"), "palette.png": _palette_transparent(),
            "one-pixel.png": image_bytes("PNG", (1, 1)), "upright.jpg": upright, "rotated-exif.jpg": rotated,
            "sideways-no-exif.jpg": sideways, "name\x1b[31m\twith controls.png": image_bytes("PNG", (64, 64))}
    page.locator(UPLOAD).set_input_files(_files({**{n: b for n, (b, _) in BAD.items()}, **good}))
    expect(page.locator(BARS)).to_have_count(5 * len(good), timeout=90_000)  # five bars per good image
    wait_idle(page)
    errors = page.get_by_test_id("stAlertContentError")
    expect(errors).to_have_count(len(BAD))
    texts = errors.all_inner_texts()
    for name, (_, words) in BAD.items():
        # the name as typed (escaped), or the browser's base name only; never used as a path
        hit = [t for t in texts if t.startswith(name[:6]) or t.startswith(name.split("/")[-1])]
        assert len(hit) == 1, (name, texts[-2:])
        assert words in hit[0], (name, hit[0])
        assert "Traceback" not in hit[0] and len(hit[0]) < 300
    # Markdown in a file name is shown as typed: no disguised link (a bare URL may be auto-linked as itself)
    assert "*bold* [link](" in texts[-1] or any("*bold* [link](" in t for t in texts)
    for a in errors.locator("a").all():
        assert a.inner_text() == urllib.parse.unquote(a.get_attribute("href")), a.evaluate("a => a.outerHTML")
    # control characters never reach what the app writes: shown escaped (Streamlit's own file list shows the
    # browser's name as plain DOM text, which no terminal interprets)
    ours = " ".join(page.get_by_role("heading").all_inner_texts() + texts)
    assert "\x1b" not in ours and "\t" not in ours
    assert "name\\x1b[31m\\twith controls.png" in ours
    # EXIF: the rotated photo is seen upright (same as the upright file), unlike the same pixels without EXIF
    up, rot, side = (_view_pixels(page, h) for h in ("upright.jpg", "rotated-exif.jpg", "sideways-no-exif.jpg"))
    assert np.abs(up - rot).mean() < 10, "EXIF orientation not honoured on the page"
    assert np.abs(up - side).mean() > 40  # the check can fail: the raw pixels look different
    # the names were never used as paths: nothing new appeared in the server's folders or the repo
    assert not any(p.name.startswith("passwd") for p in server.checkpoints.parent.rglob("*"))
    assert not (REPO / "etc").exists()
    assert_no_errors(page)
    assert not page.js_errors, page.js_errors
    shot(page, tmp_path, "bad_uploads_predict")


def test_visualize_page_refuses_bad_images_then_works(server, page, tmp_path):
    page.goto(server.url + "/visualize")
    wait_idle(page)
    for name, (data, words) in [(n, BAD[n]) for n in ("empty.png", "bomb.png", "truncated.jpg")]:
        page.locator(UPLOAD).set_input_files(_files({name: data}))
        msg = page.get_by_test_id("stAlertContentError").filter(has_text="This image cannot be used")
        expect(msg.filter(has_text=words)).to_have_count(1)  # (the previous file's message is replaced)
        wait_idle(page)
        expect(msg).to_have_count(1)
        # the page stays whole: its figures go on with a validation or demo image until the file is replaced
        expect(msg.filter(has_text="The figures below use a")).to_have_count(1)
        expect(page.get_by_text("What the network saw").first).to_be_visible()
        expect(page.get_by_role("tab", name="Deconvnet")).to_be_visible()
        assert_no_errors(page)
    page.locator(UPLOAD).set_input_files(_files({"good.png": image_bytes("PNG", (90, 70), seed=5)}))
    wait_idle(page)
    expect(page.get_by_text("What the network saw").first).to_be_visible()
    expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
    page.get_by_role("tab", name="Deconvnet").click()
    wait_idle(page)
    expect(page.locator("[data-testid=stImage]").filter(has_text="receptive field").locator("img")).to_be_visible(
        timeout=60_000)  # the tab click reruns the page (only the open view is computed): it may not have begun
    assert_no_errors(page)
    assert not page.js_errors, page.js_errors
    shot(page, tmp_path, "bad_uploads_visualize")


def _put(server, path: str, body: bytes, headers: dict[str, str]) -> int:
    """PUT ``body`` with http.client; the status, also when the server answers before the body is sent."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.putrequest("PUT", path)
        for k, v in {**headers, "Content-Length": str(len(body))}.items():
            conn.putheader(k, v)
        conn.endheaders()
        try:
            for i in range(0, len(body), 1 << 20):
                conn.send(body[i:i + (1 << 20)])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused early (Content-Length): its answer is still there to read
        return conn.getresponse().status
    finally:
        conn.close()


def test_an_upload_over_the_limit_is_413_and_the_app_keeps_serving(server, page, tmp_path):
    upload_urls: list[str] = []
    page.on("request", lambda r: upload_urls.append(r.url) if "/_stcore/upload_file/" in r.url else None)
    page.goto(server.url + "/predict")
    wait_idle(page)
    page.locator(UPLOAD).set_input_files(_files({"first.png": image_bytes("PNG", (64, 64), seed=1)}))
    expect(page.locator(BARS)).to_have_count(5, timeout=60_000)  # the first upload loads the checkpoints
    wait_idle(page)
    path = "/" + upload_urls[0].split("/", 3)[3]  # /_stcore/upload_file/<session>/<file id>
    cookie = next(c for c in page.context.cookies() if c["name"] == "_streamlit_xsrf")["value"]
    limit = 20 * 2**20
    too_big = os.urandom(limit + 2**20)  # 21 MB of an "image"
    boundary = "cnnvizboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"huge.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + too_big + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Cookie": f"_streamlit_xsrf={cookie}",
               "X-Xsrftoken": cookie, "Origin": server.url}
    assert _put(server, path, body, headers) == 413
    # XSRF is on: the same kind of request without the token is refused outright
    small = body[:200] + f"\r\n--{boundary}--\r\n".encode()
    assert _put(server, path, small, {k: v for k, v in headers.items() if k != "X-Xsrftoken"}) == 403
    # ... and the app is unaffected: the same session uploads and predicts again
    page.locator(UPLOAD).set_input_files(_files({"after.png": image_bytes("PNG", (64, 64), seed=2)}))
    expect(page.get_by_role("heading", name="after.png")).to_be_visible()
    expect(page.locator(BARS)).to_have_count(10)
    wait_idle(page)
    assert_no_errors(page)
    with urllib.request.urlopen(server.url + "/_stcore/health", timeout=5) as r:
        assert r.status == 200
    shot(page, tmp_path, "after_413")


def _listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port`` (from /proc/net/tcp and tcp6; hex as the kernel writes them)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, _, p = local.partition(":")
            if int(p, 16) == port and state == "0A":  # LISTEN
                found.add(addr)
    return found


def _ws_handshake(server, origin: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/_stcore/stream", headers={
            "Host": f"127.0.0.1:{server.port}", "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13", "Origin": origin})
        return conn.getresponse().status
    finally:
        conn.close()


def test_the_server_listens_on_loopback_with_cors_and_xsrf_on(server):
    assert _listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1 only (not 0.0.0.0, not ::)
    # CORS: another origin gets no permission to read the server's answers ...
    req = urllib.request.Request(server.url + "/_stcore/health", headers={"Origin": "http://evil.example"})
    with urllib.request.urlopen(req, timeout=5) as r:
        allowed = r.headers.get("Access-Control-Allow-Origin")
    assert allowed not in ("*", "http://evil.example"), allowed
    # ... and cannot open the websocket that presses the app's buttons; the app's own origin can
    assert _ws_handshake(server, "http://evil.example") != 101
    assert _ws_handshake(server, server.url) == 101
    # (XSRF: an upload without the token is refused with 403 in the 413 test above)
    with urllib.request.urlopen(server.url + "/_stcore/health", timeout=5) as r:
        assert r.status == 200
