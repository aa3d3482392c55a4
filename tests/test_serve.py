"""The HTTP API through an in-process client, and the page in a real headless Chromium."""

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from importlib.resources import files

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("cv2")
from cli_run import run_cli, run_cli_process
from fastapi.testclient import TestClient  # noqa: E402

import ferkit  # noqa: E402
from ferkit.serve import ServeConfig, create_app  # noqa: E402


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    p = files("skimage") / "data" / "astronaut.png"
    buf = io.BytesIO()
    Image.open(str(p)).convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def rec(tiny_run):
    return ferkit.Recognizer(tiny_run)


@pytest.fixture(scope="module")
def client(rec):
    return TestClient(create_app(rec, ServeConfig(max_upload_mb=1, max_pixels=2_000_000)))


def test_health_and_model(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    m = client.get("/v1/model").json()
    assert (
        m["arch"] == "bkstart" and m["labels"] == list(ferkit.LABELS) and m["params"] == 7_170_983
    )


def test_predict_multipart_and_raw_agree_with_the_api(client, rec, jpeg):
    a = client.post("/v1/predict", files={"file": ("a.jpg", jpeg, "image/jpeg")})
    b = client.post("/v1/predict", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert a.status_code == b.status_code == 200
    assert a.json() == b.json()
    body = a.json()
    assert (body["width"], body["height"]) == (512, 512)
    api = rec.predict(jpeg)
    assert [f["box"] for f in body["faces"]] == [f.box.to_dict() for f in api]
    f = body["faces"][0]
    assert set(f) == {"box", "eyes", "label", "scores", "probabilities", "confidence", "track"}
    assert f["track"] is None and len(f["eyes"]) == 2  # a photo: BlazeFace's eyes, no track
    assert f["label"] == api[0].label


def test_query_options(client, jpeg):
    r = client.post("/v1/predict?views=eval1&detect=false", content=jpeg)
    assert r.status_code == 200 and r.json()["faces"][0]["box"] == {
        "x": 0,
        "y": 0,
        "w": 512,
        "h": 512,
    }
    r = client.post("/v1/predict?views=eval9", content=jpeg)
    assert r.status_code == 422 and "views" in r.json()["error"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b"", {}, 400, "empty upload"),
        (b"plain text, not a picture", {"Content-Type": "text/plain"}, 415, "unreadable image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, {}, 415, "unreadable image"),
        (b"x" * (1024 * 1024 + 1), {}, 413, "over the limit of 1 MB"),
    ],
)
def test_bad_uploads_are_json_errors(client, body, headers, status, message):
    r = client.post("/v1/predict", content=body, headers=headers)
    assert r.status_code == status
    assert message in r.json()["error"]


def test_pixel_limit_is_413(client):
    buf = io.BytesIO()
    Image.new("L", (2000, 1500)).save(buf, format="PNG")  # 3 MP, small file
    r = client.post("/v1/predict", content=buf.getvalue())
    assert r.status_code == 413 and "megapixels" in r.json()["error"]


def test_multipart_without_file_field(client, jpeg):
    r = client.post("/v1/predict", files={"photo": ("a.jpg", jpeg, "image/jpeg")})
    assert r.status_code == 422 and "'file'" in r.json()["error"]


def test_queue_full_is_503(rec, jpeg):
    app = create_app(rec, ServeConfig(queue=1))
    app.state.admission.n = 1  # one request is already admitted
    r = TestClient(app).post("/v1/predict", content=jpeg)
    assert r.status_code == 503 and "busy" in r.json()["error"]


def test_no_cors_by_default_and_on_request(rec):
    plain = TestClient(create_app(rec)).get("/healthz", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in plain.headers
    app = create_app(rec, ServeConfig(cors_origins=("http://ok.example",)))
    r = TestClient(app).get("/healthz", headers={"Origin": "http://ok.example"})
    assert r.headers["access-control-allow-origin"] == "http://ok.example"


def test_page_docs_and_schema_are_local(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert 'src="http' not in page.text and 'href="http' not in page.text  # no CDN, nothing remote
    assert client.get("/static/app.js").status_code == 200
    docs = client.get("/docs").text
    assert "/swagger/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert client.get("/swagger/swagger-ui-bundle.js").status_code == 200
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def server_url(tiny_run):
    """``ferkit serve`` in a subprocess on a free loopback port: the tiny test model, or the
    shipped one when the run makes the README's screenshot (which must show what users get)."""
    from ferkit.benchmark import wait_healthy

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = [] if os.environ.get("FERKIT_SCREENSHOT") else ["--model", str(tiny_run)]
    cmd = [sys.executable, "-m", "ferkit.cli.main", "serve", *model, "--port", str(port), "--quiet"]
    server = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    try:
        wait_healthy(port, server)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def browser():
    """Debian's Chromium driven by Playwright (which cannot download a browser here)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                *BROWSER_ARGS,
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
            ],
        )
        yield b
        b.close()


@needs_chromium
def test_page_in_headless_chromium(server_url, browser, tmp_path):
    photo = tmp_path / "astronaut.jpg"
    Image.open(str(files("skimage") / "data" / "astronaut.png")).convert("RGB").save(photo)
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(server_url)
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#faces li.face", timeout=60_000)
    assert any(label in page.inner_text("#faces") for label in ferkit.LABELS)
    # the label was drawn: the canvas holds the photo and the drawing
    drawn = page.evaluate("""() => {
        const c = document.getElementById('view');
        return [c.width, c.height, c.toDataURL('image/png').length];
    }""")
    assert drawn[:2] == [512, 512] and drawn[2] > 10_000
    # the page places the probability panel exactly where annotated copies place it
    from ferkit.predict.annotate import _PAD, place_panel
    from ferkit.predict.detect import Box

    for box, w, h in [
        (Box(170, 60, 108, 108), 512, 512),  # room on the right
        (Box(400, 10, 100, 100), 512, 512),  # on the left
        (Box(0, 0, 512, 512), 512, 512),  # a face that fills the photo: inside
        (Box(10, 400, 60, 60), 200, 480),  # narrow photo
    ]:
        js = page.evaluate("([b, w, h]) => placePanel(b, w, h, 50, 15)", [box.to_dict(), w, h])
        py = place_panel(box, w, h, label_w=50, text_h=15 - _PAD)
        assert [js[k] for k in "xywh"] == [py.x, py.y, py.width, py.height], (box, js)
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert np.asarray(Image.open(shot)).std() > 10
    if keep := os.environ.get("FERKIT_SCREENSHOT"):  # how docs/serve-screenshot.png is made
        shutil.copy(shot, keep)


@needs_chromium
def test_webcam_loop_in_headless_chromium(server_url, browser):
    """Chromium's fake camera (a test pattern, no face) drives the page's webcam loop."""
    page = browser.new_page()
    answers = []
    page.on("response", lambda r: answers.append(r.status) if "/v1/predict" in r.url else None)
    page.goto(server_url)
    page.click("#camera")
    # a locator wait, not wait_for_function: the page's policy forbids eval, as it should
    page.locator("#status", has_text="live").wait_for(timeout=60_000)
    deadline = time.time() + 30
    while len(answers) < 3 and time.time() < deadline:
        page.wait_for_timeout(200)
    assert len(answers) >= 3 and set(answers) == {200}  # frames keep flowing
    assert page.inner_text("#camera") == "Stop webcam"
    page.click("#camera")


@needs_chromium
def test_the_page_tracks_webcam_faces_as_predict_does(server_url, browser):
    """The page's tracker (the server keeps no state between requests) gives the ids the
    Python tracker gives, on two faces that cross, one hidden for a while as they pass."""
    from ferkit.predict.detect import Box
    from ferkit.predict.recognizer import Face
    from ferkit.predict.tracking import FaceTracker

    frames = []
    for t in range(36):
        a = {"x": 40 + 12 * t, "y": 60, "w": 110 + t, "h": 110 + t}
        b = {"x": 470 - 12 * t, "y": 90, "w": 120 - t, "h": 120 - t}
        frames.append([b] if 14 <= t < 20 else [a, b] if t % 2 else [b, a])
    page = browser.new_page()
    page.goto(server_url)
    js = page.evaluate(
        """(frames) => { const t = new FaceTracker();
            return frames.map((fs) => t.update(fs.map((box) => ({ box }))).map((f) => f.track)); }""",
        frames,
    )
    tracker, p = FaceTracker(), dict.fromkeys(ferkit.LABELS, 1 / 7)
    py = [
        [f.track for f in tracker.update(Face(Box(**b), "happy", p, p, 1 / 7) for b in fs)]
        for fs in frames
    ]
    assert js == py and {i for ids in py for i in ids} == {1, 2}


def test_benchmark_serve_small(tiny_run, capsys):
    import torch

    from ferkit.cli.main import main

    args = ["benchmark", "serve", "--model", str(tiny_run), "--clients", "2", "--requests", "6"]
    assert main([*args, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["requests"] == 6 and r["errors"] == 0, r["error_statuses"]
    assert r["p99_ms"] >= r["p50_ms"] > 0 and r["requests_per_s"] > 0
    # the same photo, measured in one run: Haar's one-at-a-time server is the baseline
    for variant in ("one_at_a_time", "one_at_a_time_haar", "batched_onnx"):
        assert r[f"{variant}_errors"] == 0, r[f"{variant}_error_statuses"]
    assert r["speedup_onnx"] > 0 and r["speedup_over_haar"] > 0
    # the servers before batching ran torch on all its threads, as their default was
    threads = f"--threads {torch.get_num_threads()}"
    assert r["options"] == "" and r["one_at_a_time_haar_options"].endswith(threads)
    assert r["one_at_a_time_options"] == f"--workers 1 --batch-window-ms 0 {threads}"


def test_serve_cli_needs_a_model_or_says_so(tmp_path):
    r = run_cli("serve", "--model", str(tmp_path / "no"))
    assert r.returncode == 1 and "no such model file" in r.stderr


@pytest.mark.parametrize(("option", "expected"), [(["--threads", "1"], 1), ([], 2)])
def test_serve_threads_sets_the_servers_torch_threads(tiny_run, monkeypatch, option, expected):
    """By default the server takes half of torch's threads (its batches share the cores)."""
    import torch
    import uvicorn

    seen = []
    monkeypatch.setattr(
        uvicorn.Server, "run", lambda self, sockets: seen.append(torch.get_num_threads())
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = torch.get_num_threads()
    torch.set_num_threads(4)  # so that 1 is the option's doing, and 2 the default's
    try:
        r = run_cli("serve", "--model", str(tiny_run), "--port", str(port), *option, "--quiet")
    finally:
        torch.set_num_threads(before)
    assert r.returncode == 0, r.stderr
    assert seen == [expected]


def test_errors_are_json_with_security_headers(client):
    for r in (client.get("/nope"), client.put("/v1/predict", content=b"x")):
        assert r.status_code in (404, 405) and set(r.json()) == {"error"}
    r = client.get("/healthz")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY" and r.headers["referrer-policy"] == "no-referrer"
    page = client.get("/")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy


def test_model_metadata_hides_the_trainers_paths(client, tiny_run):
    config = client.get("/v1/model").json()["config"]
    assert config["data"] == "fer2013.csv" and config["out"] == tiny_run.name
    assert "/" not in config["data"] + config["out"]


def test_unsupported_media_message_names_no_python_object(client):
    r = client.post("/v1/predict", content=b"not an image", headers={"Content-Type": "image/png"})
    assert r.status_code == 415 and "object at 0x" not in r.json()["error"]
    assert "not a format PIL recognises" in r.json()["error"]


def test_admission_comes_before_the_body_is_read(rec, jpeg, monkeypatch):
    import ferkit.serve.app as app_module

    app = create_app(rec, ServeConfig(queue=1))
    read = []

    async def spy(*args):
        read.append(1)
        return bytearray(jpeg)

    monkeypatch.setattr(app_module, "_read_body", spy)
    c = TestClient(app)
    assert app.state.admission.try_enter()  # the only slot is taken
    r = c.post("/v1/predict", content=jpeg)
    assert r.status_code == 503 and read == []  # refused without reading the upload
    app.state.admission.leave()
    assert c.post("/v1/predict", content=jpeg).status_code == 200 and read == [1]


def test_admission_bounds_the_uploads_held_at_once_by_size():
    from ferkit.serve.app import _Admission

    a = _Admission(limit=16, max_bytes=100)
    assert a.try_enter(60) and a.try_enter(40)  # 100 of 100
    assert not a.try_enter(1)  # over the budget, under the count
    a.leave(40)
    assert not a.try_enter(41) and a.try_enter(40)
    a.leave(60)
    a.leave(40)
    assert a.try_enter(500)  # alone, any size (the upload limit is checked before)
    assert not a.try_enter(0)  # nothing beside an upload over the budget
    a = _Admission(limit=2, max_bytes=None)
    assert a.try_enter(10**9) and a.try_enter(10**9) and not a.try_enter(0)


def test_a_large_upload_waits_its_turn_behind_the_budget(rec, jpeg):
    app = create_app(rec, ServeConfig(queue=16, max_inflight_mb=len(jpeg) * 1.5 / 2**20))
    c = TestClient(app)
    assert app.state.admission.try_enter(len(jpeg))  # one upload like it is being read
    r = c.post("/v1/predict", content=jpeg)
    assert r.status_code == 503 and app.state.admission.bytes == len(jpeg)
    app.state.admission.leave(len(jpeg))
    assert c.post("/v1/predict", content=jpeg).status_code == 200
    assert app.state.admission.bytes == 0 and app.state.admission.n == 0  # released


def _serve(tiny_run, tmp_path, *args):
    from ferkit.benchmark import wait_healthy

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 (closed by the caller's finally)
    cmd = [sys.executable, "-m", "ferkit.cli.main", "serve", "--model", str(tiny_run)]
    server = subprocess.Popen([*cmd, "--port", str(port), *args], stderr=log)
    server.stderr = open(tmp_path / "server.log", "rb")  # noqa: SIM115 (for wait_healthy)
    wait_healthy(port, server)
    return server, port, log


def test_stalled_and_vanishing_clients(tiny_run, tmp_path):
    server, port, log = _serve(tiny_run, tmp_path, "--timeout", "1")
    head = (
        b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    try:
        # a client that stops sending mid-body is answered 408 and dropped after --timeout
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(head + b"x" * 1000)
            t0 = time.time()
            answer = s.recv(4096).decode()
            assert answer.startswith("HTTP/1.1 408") and time.time() - t0 < 10
        # clients that go away mid-upload: one log line each, no traceback
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
                s.sendall(head + b"x" * 1000)
        time.sleep(1.0)
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200  # still serving
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    text = (tmp_path / "server.log").read_text()
    assert "Traceback" not in text
    assert text.count("disconnected after") == 5


def test_concurrent_requests_share_network_calls(rec, jpeg):
    """16 requests at once: the same answers as one at a time, in fewer network calls."""
    from concurrent.futures import ThreadPoolExecutor

    alone = rec.predict(jpeg)
    cfg = ServeConfig(queue=32, workers=4, batch_window_ms=200, max_batch_faces=64)
    app = create_app(rec, cfg)
    with TestClient(app) as c:
        post = lambda _: c.post("/v1/predict", content=jpeg)  # noqa: E731
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(post, range(16)))
    assert [a.status_code for a in answers] == [200] * 16
    for a in answers:
        faces = a.json()["faces"]
        assert [f["box"] for f in faces] == [f.box.to_dict() for f in alone]
        assert [f["label"] for f in faces] == [f.label for f in alone]
        got = [list(f["scores"].values()) for f in faces]
        assert np.allclose(got, [list(f.scores.values()) for f in alone], atol=1e-5)
    assert app.state.batcher.calls < 16  # batched: some calls served several requests


def test_without_batching_each_request_is_its_own_call(rec, jpeg):
    from concurrent.futures import ThreadPoolExecutor

    app = create_app(rec, ServeConfig(queue=32, workers=4, batch_window_ms=0))
    with TestClient(app) as c, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: c.post("/v1/predict", content=jpeg), range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    assert app.state.batcher.calls == 8


def test_a_failing_batch_fails_its_requests_and_the_server_goes_on(rec, jpeg, monkeypatch):
    from ferkit.predict.detect import Box
    from ferkit.serve.batcher import FaceBatcher

    batcher = FaceBatcher(rec, window_s=0.05)
    crops = np.zeros((2, 48, 48), np.uint8)
    boxes = [Box(0, 0, 48, 48)] * 2
    monkeypatch.setattr(rec, "classify", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        batcher.classify(crops, boxes, None)
    monkeypatch.undo()
    assert [f.box for f in batcher.classify(crops, boxes, "center")] == boxes
    batcher.close()


def test_the_pixel_budget_lets_small_photos_through_together_and_huge_ones_in_turn():
    """Decoded pixels held at once are bounded; one photo is always let in when none is."""
    import threading

    from ferkit.serve.app import _PixelBudget

    budget, inside, most, lock = _PixelBudget(15), [0], [0], threading.Lock()

    def decode(pixels):
        with budget.hold(pixels):
            with lock:
                inside[0] += pixels
                most[0] = max(most[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= pixels

    def run(sizes):
        most[0] = 0
        threads = [threading.Thread(target=decode, args=(n,)) for n in sizes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        return most[0]

    assert run([10, 10, 10]) == 10  # in turn: two never fit together
    assert run([5, 5, 5]) == 15  # all at once
    assert run([40]) == 40 and budget.held == 0  # larger than the budget: alone, not refused


def test_image_pixels_reads_the_header_only_and_never_raises():
    from ferkit.images import image_pixels

    buf = io.BytesIO()
    Image.new("L", (640, 480)).save(buf, format="PNG")
    assert image_pixels(buf.getvalue()) == 640 * 480
    half = buf.getvalue()[: len(buf.getvalue()) // 2]
    assert image_pixels(half) == 640 * 480  # the size is in the header: nothing is decoded
    assert image_pixels(b"not an image") == 0


def test_idle_and_slow_header_clients_are_dropped_while_others_are_served(tiny_run, tmp_path):
    """Issue 35: a connection that sends nothing, or its header lines slowly, is closed within
    --timeout; the server answers other clients meanwhile, and parser errors are JSON."""
    import http.client

    server, port, log = _serve(tiny_run, tmp_path, "--timeout", "1")
    try:
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
        slow = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(5)]
        for s in slow:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
        t0 = time.time()
        for _ in range(6):  # a header line every 0.4 s: never complete within the second
            for s in slow:
                with contextlib.suppress(OSError):
                    s.sendall(b"X-Slow: 1\r\n")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/healthz")
            assert conn.getresponse().status == 200  # others are served
            conn.close()
            time.sleep(0.4)
        for s in idle + slow:
            with contextlib.suppress(ConnectionResetError):
                assert s.recv(100) == b""  # closed by the server
            s.close()
        assert time.time() - t0 < 8
        # the HTTP parser's errors in the {"error": ...} shape
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n")
            received = b""
            while chunk := s.recv(4096):  # the server closes after its answer
                received += chunk
            answer = received.decode()
        assert answer.startswith("HTTP/1.1 400") and "application/json" in answer
        assert json.loads(answer.split("\r\n\r\n", 1)[1])["error"].startswith("malformed HTTP")
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_a_refused_upload_reads_its_503(tiny_run, tmp_path, jpeg):
    """A client still sending its body when the queue is full gets the 503, not a reset."""
    server, port, log = _serve(tiny_run, tmp_path, "--timeout", "5", "--queue", "1")
    body = jpeg * (9_000_000 // len(jpeg))  # more than the sockets buffer
    head = (
        "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as holder:
            holder.sendall(head + body[:1000])  # admitted, then stalls: holds the one slot
            time.sleep(0.5)
            with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
                s.sendall(head + body)
                answer = b""
                while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
        text = answer.decode()
        assert text.startswith("HTTP/1.1 503"), text[:200]
        assert "server busy" in json.loads(text.split("\r\n\r\n", 1)[1])["error"]
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_head_of_the_page_and_one_file_part_only(client, jpeg):
    r = client.head("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    files = [("file", ("a.jpg", jpeg, "image/jpeg")), ("file", ("b.jpg", jpeg, "image/jpeg"))]
    r = client.post("/v1/predict", files=files)
    assert r.status_code == 422 and "2 'file' fields" in r.json()["error"]


def test_a_port_in_use_is_one_clear_line(tiny_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run_cli_process(
            "serve",
            "--model",
            str(tiny_run),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            timeout=120,
        )
    assert r.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in r.stderr
    assert "serving on" not in r.stderr and "Traceback" not in r.stderr


def test_a_refused_body_is_read_and_dropped_before_the_503(rec):
    """At the ASGI level: the 503 goes out only after the refused body was read (bounded), so
    the client is never reset mid-send; the bytes are not kept."""
    import asyncio

    app = create_app(rec, ServeConfig(queue=1))
    assert app.state.admission.try_enter()  # the only slot is taken
    chunks, given, sent = [b"x" * 4096] * 8, [], []

    async def receive():
        if len(given) < len(chunks):
            given.append(1)
            return {"type": "http.request", "body": chunks[0], "more_body": len(given) < 8}
        await asyncio.sleep(30)
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append((message, len(given)))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/predict",
        "raw_path": b"/v1/predict",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-length", str(8 * 4096).encode()), (b"host", b"x")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 20))
    start, read_before = next((m, n) for m, n in sent if m["type"] == "http.response.start")
    assert start["status"] == 503 and read_before == len(chunks)
    assert (b"connection", b"close") in start["headers"]
