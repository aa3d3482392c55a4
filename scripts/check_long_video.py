"""A long generated video through ``predict --engine ray`` and the local path: same records?

    python scripts/check_long_video.py --minutes 10 --every 10 --workers 2

Writes a video of the astronaut drifting across the frame (``--minutes`` at 25 fps, 160x120),
runs both engines on it and prints one JSON line: frames analysed, faces, the frame ranges Ray
split it into, each engine's seconds, and whether labels and boxes agree everywhere (scores
within 1e-4). Exit status 1 when they do not.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="video length")
    p.add_argument("--every", type=int, default=10, help="analyse every N-th frame")
    p.add_argument("--workers", type=int, default=2, help="Ray workers")
    p.add_argument("--views", default="center", help="center or eval1")
    p.add_argument("--model", help="model (default: the shipped one)")
    args = p.parse_args()

    import cv2
    from PIL import Image

    from ferkit.predict.files import predict_paths
    from ferkit.predict.ray_engine import VIDEO_CHUNK, RecognizerSpec, predict_paths_ray, stop_ray
    from ferkit.predict.recognizer import Recognizer

    face = Image.open(files("skimage") / "data" / "astronaut.png").convert("RGB")
    face = np.asarray(face.resize((120, 120)))[..., ::-1]
    n = int(args.minutes * 60 * 25)
    with tempfile.TemporaryDirectory() as tmp:
        video = str(Path(tmp) / "long.mp4")
        out = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 25, (160, 120))
        for k in range(n):
            frame = np.full((120, 160, 3), 90, np.uint8)
            x = int(20 + 20 * np.sin(k / 200))
            frame[:, x : x + 120] = face
            out.write(frame)
        out.release()
        local: list[dict] = []
        t = time.perf_counter()
        predict_paths(
            Recognizer(args.model, views=args.views), [video], as_json=True, every=args.every,
            progress=False, emit=lambda line: local.append(json.loads(line)),
        )  # fmt: skip
        local_s = time.perf_counter() - t
        got: list[dict] = []
        t = time.perf_counter()
        predict_paths_ray(
            [video], RecognizerSpec(model=args.model, views=args.views, every=args.every),
            workers=args.workers, emit=lambda line: got.append(json.loads(line)),
        )  # fmt: skip
        ray_s = time.perf_counter() - t
        stop_ray()
    key = [(r["frame"], r["box"], r["label"]) for r in local]
    same = key == [(r["frame"], r["box"], r["label"]) for r in got] and all(
        np.allclose(list(a["scores"].values()), list(b["scores"].values()), atol=1e-4)
        for a, b in zip(local, got, strict=True)
    )
    print(
        json.dumps(
            {
                "frames": n,
                "analysed": len(range(0, n, args.every)),
                "faces": len(local),
                "ray_tasks": -(-n // VIDEO_CHUNK),
                "workers": args.workers,
                "local_s": round(local_s, 1),
                "ray_s": round(ray_s, 1),
                "same_records": same,
            }
        )
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
