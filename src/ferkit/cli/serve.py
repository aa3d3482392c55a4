"""`ferkit serve`: an HTTP API and a web page (photo upload or live webcam)."""

from __future__ import annotations

import argparse
import sys

from ..argtypes import PORT, add_threads_option, number
from .options import UsageError, check_detector, detector_arg, max_megapixels_arg, model_args

NAME = "serve"
HELP = "an HTTP API and a web page (photo upload or live webcam)"
DESCRIPTION = (
    "Serve POST /v1/predict, GET /v1/model, GET /healthz, the API docs at /docs and a web "
    "page at / (choose or drop a photo, or use the webcam; browsers allow the webcam only on "
    "localhost or https). Everything is served locally: no CDN, no internet."
)


def add_arguments(sp: argparse.ArgumentParser) -> None:
    model_args(sp)
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sp.add_argument("--port", type=PORT, default=8000, help="port to listen on")
    sp.add_argument(
        "--max-upload-mb",
        type=number(float, above=0, max=4096),
        default=10,
        help="larger uploads get 413",
    )
    max_megapixels_arg(sp, "get 413")
    detector_arg(sp)
    sp.add_argument(
        "--timeout",
        type=number(float, above=0, max=3600),
        default=30,
        metavar="S",
        help="a connection whose request headers are not complete S seconds after it opened "
        "(or after its last answer) is closed, and a client that sends nothing for S seconds "
        "mid-upload is answered 408 and dropped (default 30)",
    )
    sp.add_argument(
        "--queue",
        type=number(int, min=1, max=100_000),
        default=16,
        help="requests admitted at once (running + waiting); more get 503",
    )
    sp.add_argument(
        "--max-inflight-mb",
        type=number(float, above=0, max=65_536),
        default=64,
        metavar="MB",
        help="uploads admitted at once, by their Content-Length (a body without one counts as "
        "--max-upload-mb); more get 503 before their body is read. One request is always "
        "admitted when none is",
    )
    sp.add_argument(
        "--workers",
        type=number(int, min=1, max=256),
        help="threads decoding and detecting uploads (default: 8 a core, at most 64: the more "
        "faces are found at once, the larger the network's batches)",
    )
    sp.add_argument(
        "--decode-megapixels",
        type=number(float, above=0, max=10_000),
        default=24.0,
        metavar="MP",
        help="decoded photos held at once, in megapixels (default 24: two 10 MB phone photos); "
        "more wait their turn, one is always decoded",
    )
    sp.add_argument(
        "--batch-window-ms",
        type=number(float, min=0, max=10_000),
        default=5,
        metavar="MS",
        help="how long the faces of one request wait for other requests' faces to share a "
        "network call (0: no batching, each request's faces alone)",
    )
    sp.add_argument(
        "--max-batch",
        type=number(int, min=1, max=4096),
        default=64,
        help="faces per network call at most",
    )
    sp.add_argument(
        "--cors", nargs="+", metavar="ORIGIN", help="allow these origins (CORS is off by default)"
    )
    add_threads_option(
        sp,
        default="half of torch's, at least 1: the network's batches share the cores with "
        "the workers",
    )
    sp.add_argument("--quiet", action="store_true", help="no access log")


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..serve import ServeConfig, create_app
        from ..serve.app import default_threads, return_freed_memory
    except ImportError:
        raise UsageError("ferkit serve needs its extra: pip install 'ferkit[serve]'") from None
    from ..predict.recognizer import Recognizer

    check_detector(args.detector)
    import torch

    torch.set_num_threads(args.threads or default_threads())
    rec = Recognizer(
        args.model,
        device=args.device,
        detector=args.detector,
        align=args.align,
        int8=args.int8,
        backend=args.backend,
        precision=args.precision,
    )
    cfg = ServeConfig(
        max_upload_mb=args.max_upload_mb,
        queue=args.queue,
        max_inflight_mb=args.max_inflight_mb,
        max_pixels=int(args.max_megapixels * 1e6),
        cors_origins=tuple(args.cors or ()),
        body_timeout_s=args.timeout,
        workers=args.workers,
        batch_window_ms=args.batch_window_ms,
        decode_megapixels=args.decode_megapixels,
        max_batch_faces=args.max_batch,
    )
    sock = _listen(args.host, args.port)  # first: a port in use is one clear line
    rec.warm_up()  # the first requests do not wait for the detector's tracing
    from ..serve.protocol import protocol_with_deadline

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(rec, cfg),
            http=protocol_with_deadline(args.timeout),
            log_level="warning" if args.quiet else "info",
        )
    )
    print(
        f"ferkit: serving on http://{args.host}:{args.port}/ (API docs at /docs)", file=sys.stderr
    )
    return_freed_memory()
    server.run(sockets=[sock])
    return 0


def _listen(host: str, port: int):
    """The server's socket, bound: an OSError naming the address when it cannot be."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise OSError(f"--host {host}: {e.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
