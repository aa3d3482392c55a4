"""The FastAPI application (imported only by ``ferkit serve``: fastapi is an optional extra).

Requests are admitted up to ``queue`` at once and up to ``max_inflight_mb`` of uploads (more get
a fast 503 before their body is read, never a pile-up); each
decodes and detects in a worker thread, and the faces of concurrent requests go through the
network together (:mod:`ferkit.serve.batcher`), so the event loop stays responsive and the
cores stay busy. Bad input is a JSON error with 400/408/413/415/422, never a 500."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.resources import files
from typing import Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..images import MAX_PIXELS, ImageError
from ..predict.recognizer import Recognizer
from .batcher import FaceBatcher

STATIC = files("ferkit.serve") / "static"


@dataclass
class ServeConfig:
    """Server limits; docs/CONTRACT.md's flags map onto these."""

    max_upload_mb: float = 10.0
    queue: int = 16  # requests admitted at once (running + waiting); more get 503
    max_inflight_mb: float = 64.0  # uploads admitted at once, by Content-Length (else the limit)
    max_pixels: int = MAX_PIXELS
    cors_origins: tuple[str, ...] = ()
    body_timeout_s: float = 30.0  # a client that sends nothing for this long is dropped (408)
    workers: int | None = None  # threads decoding and detecting (default: default_workers())
    batch_window_ms: float = 5.0  # how long a batch waits for more faces (0: no batching)
    max_batch_faces: int = 64  # faces per network call at most
    decode_megapixels: float = 24.0  # decoded photos held at once, in pixels (one always is)


#: Sent with every answer; the page's policy allows only its own files (no inline code).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class _Admission:
    """Admitted requests, counted and by their upload's size: over either limit is refused at
    once (no waiting). One request is always admitted when none is, whatever its size."""

    def __init__(self, limit: int, max_bytes: int | None = None):
        self.limit, self.max_bytes = limit, max_bytes
        self.n, self.bytes, self._lock = 0, 0, threading.Lock()

    def try_enter(self, nbytes: int = 0) -> bool:
        with self._lock:
            over_budget = self.max_bytes is not None and self.bytes + nbytes > self.max_bytes
            if self.n >= self.limit or (self.n and over_budget):
                return False
            self.n += 1
            self.bytes += nbytes
            return True

    def leave(self, nbytes: int = 0) -> None:
        with self._lock:
            self.n -= 1
            self.bytes -= nbytes


class _PixelBudget:
    """Decoded photos held at once, by their pixel count: a worker waits until its photo fits
    (one always does when none is held). Many small photos are found in parallel, which is
    what fills the network's batches; a few huge ones are not decoded all at once."""

    def __init__(self, limit: int):
        self.limit, self.held, self._free = limit, 0, threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        with self._free:
            self._free.wait_for(lambda: not self.held or self.held + pixels <= self.limit)
            self.held += pixels
        try:
            yield
        finally:
            with self._free:
                self.held -= pixels
                self._free.notify_all()


def default_workers() -> int:
    """Eight decode-and-detect threads a core (at most 64): the batcher can only gather the
    faces that are found at once, so with one thread a core its batches hold one or two faces.
    Measured on 2 cores (16 clients): 2 threads 10.8-12.0 requests/s, 8: 14.0-14.7, 16:
    14.0-15.3, 32: 14.4. Memory stays bounded by admission and ``decode_megapixels``."""
    return min(64, 8 * (os.cpu_count() or 1))


def default_threads() -> int:
    """Half of torch's threads (at least one) for the server's torch: the batcher's network
    calls share the cores with the workers decoding and detecting, and teams of all the cores
    for each only contend. Measured on 2 cores (Intel Xeon, 16 clients, 1000 requests each,
    alternated): 1 thread 53.2, 53.7, 55.8 requests/s, 2 threads 50.5, 51.5, 50.9."""
    import torch

    return max(1, torch.get_num_threads() // 2)


def create_app(recognizer: Recognizer, config: ServeConfig | None = None):
    """The ASGI app serving ``recognizer``: its pages, its API, and the limits that keep it up."""
    cfg = config or ServeConfig()
    app = FastAPI(
        title="ferkit",
        version=_version(),
        docs_url=None,
        redoc_url=None,
        description="Facial expression recognition (BKVGG CNNs on FER-2013).",
    )
    _add_headers_and_errors(app, cfg)
    _add_pages(app)
    app.state.admission = _Admission(cfg.queue, int(cfg.max_inflight_mb * 1024 * 1024))
    app.state.batcher = FaceBatcher(recognizer, cfg.batch_window_ms / 1000, cfg.max_batch_faces)
    _add_api(app, recognizer, cfg)
    return app


def _error(status: int, message: str, close: bool = False) -> JSONResponse:
    """Every error the server answers, in docs/CONTRACT.md's ``{"error": ...}`` shape
    (``close``: and the connection is closed after it)."""
    headers = {"Connection": "close"} if close else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _drain(request: Request, limit: int, timeout: float) -> None:
    """Read and drop a refused request's body: at most ``limit`` bytes, ``timeout`` seconds a
    chunk; nothing of it is kept."""
    received = 0
    chunks = request.stream().__aiter__()
    while received <= limit:
        try:
            received += len(await asyncio.wait_for(chunks.__anext__(), timeout))
        except (StopAsyncIteration, asyncio.TimeoutError, ClientDisconnect):
            return


def _add_headers_and_errors(app, cfg: ServeConfig) -> None:
    """CORS when asked, the security headers on every answer, and errors as JSON."""
    if cfg.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cfg.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )

    @app.middleware("http")
    async def _security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if request.url.path in ("/", "/static/index.html"):
            response.headers["Content-Security-Policy"] = PAGE_POLICY
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request, exc):  # 404, 405, ...: the same {"error": ...} shape
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request, exc):  # 422 with docs/CONTRACT.md's {"error": ...} shape
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return _error(422, f"{where}: {first.get('msg', 'invalid request')}")


def _add_pages(app) -> None:
    """The web page, its static files and the API docs, all served locally."""
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    _mount_swagger(app)

    @app.api_route(
        "/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False
    )
    async def index():
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="ferkit API",
            swagger_js_url="/swagger/swagger-ui-bundle.js",
            swagger_css_url="/swagger/swagger-ui.css",
            swagger_favicon_url="/swagger/favicon-32x32.png",
        )


def _add_api(app, recognizer: Recognizer, cfg: ServeConfig) -> None:
    """``/healthz``, ``/v1/model`` and ``/v1/predict`` with its admission, size and time limits."""
    from ..fermodel.files import meta_dict

    pool = ThreadPoolExecutor(
        max_workers=cfg.workers or default_workers(),
        thread_name_prefix="ferkit-request",
    )
    decoding = _PixelBudget(int(cfg.decode_megapixels * 1e6))
    limit = int(cfg.max_upload_mb * 1024 * 1024)
    admission, batcher = app.state.admission, app.state.batcher

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/v1/model")
    async def model_info() -> dict:
        return _public(meta_dict(recognizer.model))

    @app.post("/v1/predict", responses={400: {}, 413: {}, 415: {}, 422: {}, 503: {}})
    async def predict(
        request: Request,
        views: Literal["center", "eval1"] | None = Query(
            None,
            description="test-time views per face (default: the recognizer's, eval1)",
        ),
        detect: bool = Query(True),
    ):
        """The faces in an image sent as multipart field ``file`` or as the raw body."""
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limit:
            return _error(413, f"upload over the limit of {cfg.max_upload_mb:g} MB", close=True)
        # admitted before the body is read, by what it announces (a body without a length
        # counts as the largest allowed): uploads in memory stay under --max-inflight-mb
        size = int(length) if length and length.isdigit() else limit
        if not admission.try_enter(size):
            # the body is read and dropped (bounded by the limit and the timeout, never kept),
            # so that the client, still sending, reads its 503 instead of a reset connection
            await _drain(request, limit, cfg.body_timeout_s)
            return _error(503, "server busy: too many requests queued, retry shortly", close=True)
        try:
            data = await _upload(request, limit, cfg)
            if isinstance(data, JSONResponse):
                return data
            loop = asyncio.get_running_loop()
            width, height, faces = await loop.run_in_executor(
                pool,
                _infer,
                recognizer,
                batcher,
                decoding,
                data,
                views,
                detect,
                cfg.max_pixels,
            )
        except ImageError as e:
            msg = str(e).replace("<bytes>: ", "")
            bomb = "decompression-bomb" in msg or "decompression bomb" in msg
            return _error(413 if bomb else 415, msg)
        finally:
            admission.leave(size)
        return {"width": width, "height": height, "faces": [f.to_dict() for f in faces]}


async def _upload(request: Request, limit: int, cfg: ServeConfig) -> bytes | JSONResponse:
    """The uploaded image's bytes (the multipart field ``file`` or the raw body), or the error
    to answer: too large, too slow, malformed or empty."""
    body = await _read_body(request, limit, cfg.body_timeout_s)
    if body is None:
        return _error(413, f"upload over the limit of {cfg.max_upload_mb:g} MB")
    if isinstance(body, str):
        return _error(408, body)
    data = bytes(body)
    del body  # one copy of each admitted upload in memory, not two
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        data = await _multipart_file(request, data)
        if isinstance(data, str):
            return _error(422, data)
    if not data:
        return _error(400, "empty upload: send an image as multipart field 'file' or as the body")
    return data


def return_freed_memory() -> bool:
    """Make glibc give large freed blocks back to the system at once. By default its mmap
    threshold grows to the largest block freed (up to 32 MB), after which decoded uploads are
    carved from the heap and kept: the server's memory then grows by what it once needed, not
    what it holds. Linux with glibc only (False elsewhere); process-wide, so ``ferkit serve``
    calls it, not the app."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 128 * 1024)) and bool(
        libc.mallopt(m_trim_threshold, 128 * 1024)
    )


async def _read_body(request: Request, limit: int, timeout: float) -> bytearray | str | None:
    """The body, read up to ``limit`` bytes: None past the limit (reading stops there), a
    message when the client stalls for ``timeout`` seconds or goes away mid-body."""
    body = bytearray()
    chunks = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), timeout)
        except StopAsyncIteration:
            return body
        except asyncio.TimeoutError:
            return f"the client sent nothing for {timeout:g} s"
        except ClientDisconnect:
            _log_disconnect(request, len(body))
            return "client disconnected"
        body += chunk
        if len(body) > limit:
            return None


def _log_disconnect(request: Request, received: int) -> None:
    """One log line for a client that went away mid-upload (not a server error)."""
    import logging

    peer = request.client.host if request.client else "?"
    logging.getLogger("ferkit.serve").warning(
        "client %s disconnected after %d bytes of its upload", peer, received
    )


def _public(meta: dict) -> dict:
    """The model's metadata without the paths of the machine that trained it."""
    config = dict(meta.get("config", {}))
    for key in ("data", "out"):
        if isinstance(config.get(key), str):
            config[key] = os.path.basename(config[key].rstrip("/"))
    return {**meta, "config": config}


def _infer(
    recognizer: Recognizer,
    batcher: FaceBatcher,
    decoding: _PixelBudget,
    data: bytes,
    views: str | None,
    detect: bool,
    max_pixels: int,
):
    """(width, height, faces) of one upload: decoded (grey where the detector needs no colour)
    and detected in this worker thread while its pixels fit the decoding budget, the faces
    then classified in the batch they join."""
    import numpy as np

    from ..images import image_pixels

    with decoding.hold(min(image_pixels(data), max_pixels)):
        pixels = recognizer.decode(data, detect=detect, max_pixels=max_pixels)
        height, width = pixels.shape[:2]
        found = recognizer.find_faces(pixels, detect=detect)
        del pixels
    if not found:
        return width, height, []
    faces = batcher.classify(np.stack([c for _, c in found]), [b for b, _ in found], views)
    return width, height, faces


async def _multipart_file(request, data: bytes) -> bytes | str:
    """The ``file`` field of an already-read multipart body, or an error message."""
    request._body = data  # Starlette re-reads a cached body when parsing the form
    try:
        form = await request.form()
    except Exception as e:  # malformed multipart: the client's fault
        return f"malformed multipart body ({e.__class__.__name__})"
    uploads = form.getlist("file")
    if not uploads or isinstance(uploads[0], str):
        return "multipart body without a 'file' field"
    if len(uploads) > 1:
        return f"{len(uploads)} 'file' fields: send one image a request"
    return await uploads[0].read()


def _mount_swagger(app) -> None:
    """Swagger UI's assets from the swagger-ui-bundle wheel: the docs work offline."""
    try:
        import swagger_ui_bundle
    except ImportError:
        return
    app.mount(
        "/swagger",
        StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
        name="swagger",
    )


def _version() -> str:
    from .. import __version__

    return __version__
