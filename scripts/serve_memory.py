"""How much ``ferkit serve``'s memory grows under concurrent large uploads.

    python scripts/serve_memory.py --clients 32 --mb 10

Starts the server (shipped model unless --model) on loopback, warms it with one request, then
sends ``--clients`` concurrent uploads of a JPEG of about ``--mb`` MB (noise, so it does not
compress) and samples the server's resident memory every 10 ms. Prints one JSON line: RSS
after warm-up, peak RSS, the rise, and the answers' status counts (503s are expected past
--queue).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--mb", type=float, default=10.0, help="upload size in MB (approximately)")
    p.add_argument("--model", help="model (default: the shipped one)")
    args = p.parse_args()

    from PIL import Image

    from ferkit.benchmark import photo_640x480, wait_healthy

    side = int((args.mb * 1024 * 1024 / 1.13) ** 0.5)  # noise JPEG q95: ~1.13 bytes a pixel
    noise = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="JPEG", quality=95)
    big = buf.getvalue()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "ferkit.cli.main", "serve", "--port", str(port), "--quiet"]
    cmd += ["--model", args.model] if args.model else []
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def post(body: bytes) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            conn.request("POST", "/v1/predict", body=body, headers={"Content-Type": "image/jpeg"})
            return conn.getresponse().status
        except OSError:
            return 0
        finally:
            conn.close()

    try:
        wait_healthy(port, server)
        post(photo_640x480())
        base = _rss_mb(server.pid)
        peak, done = base, threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _rss_mb(server.pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        with ThreadPoolExecutor(args.clients) as pool:
            statuses = Counter(pool.map(lambda _: post(big), range(args.clients)))
        done.set()
        sampler.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        json.dumps(
            {
                "clients": args.clients,
                "upload_mb": round(len(big) / 1024 / 1024, 1),
                "pixels_mp": round(side * side / 1e6, 1),
                "rss_after_warmup_mb": round(base),
                "rss_peak_mb": round(peak),
                "rise_mb": round(peak - base),
                "statuses": dict(statuses),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
