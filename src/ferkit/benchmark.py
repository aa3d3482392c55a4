"""``ferkit benchmark``: speed measured side by side on this machine, never in tests."""

from __future__ import annotations

import argparse
import time

import torch


def run(what: str, args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    if what == "train":
        return bench_train(args.arch, args.batch_size, args.steps, args.device, args.compile)
    if what == "evaluate":
        return bench_evaluate(args.arch, args.method, args.images, args.device)
    if what == "predict":
        return bench_predict(args.model, args.arch, args.photo, args.device)
    if what == "serve":
        return bench_serve(args.model, args.photo, args.clients, args.requests)
    if what == "engine":
        return bench_engine(args.model, args.photo, args.photos, args.workers)
    if what == "video":
        return bench_video(args.model, args.photo, args.frames)
    raise ValueError(f"unknown benchmark {what!r}")


def _time_steps(step, steps: int, device: torch.device) -> float:
    """Images per second of ``step()`` (returns a batch size) after two warm-up calls."""
    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0, n = time.perf_counter(), 0
    for _ in range(steps):
        n += step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def bench_train(
    arch: str, batch_size: int, steps: int, device_name: str = "auto", compile: bool = False
) -> dict:
    """A plain fp32 eager training step against ferkit's (augmentation on the device,
    channels_last, autocast where the hardware has it), and against the fast procedure's
    (the same with train-time BatchNorm, AdamW and the weight average: what an epoch of
    ``--norm-layers bn --optimizer adamw --ema`` costs), same network and batch; the fast
    procedure's step also in fp32 (``--precision fp32``: faster than bf16 autocast on some
    CPUs) and, with ``compile``, through ``torch.compile``."""
    import copy

    from .data.augment import augment
    from .device import autocast_dtype, memory_format, resolve_device
    from .fermodel.views import center_crop
    from .losses import l2_svm_loss
    from .models import create_model
    from .models.norm import with_batchnorm
    from .training.averaging import update_ema
    from .training.components import make_optimizer, train_step
    from .training.config import TrainConfig

    device = resolve_device(device_name)
    torch.manual_seed(0)
    x48 = torch.randn(batch_size, 1, 48, 48, device=device)
    y = torch.randint(0, 7, (batch_size,), device=device)

    plain = create_model(arch).to(device)
    plain_opt = torch.optim.SGD(plain.parameters(), lr=1e-3, momentum=0.9)
    x_plain = center_crop(x48).contiguous()

    def plain_step() -> int:
        train_step(plain, plain_opt, l2_svm_loss, x_plain, y, None)
        return batch_size

    fmt, amp = memory_format(device), autocast_dtype(device)
    fast = create_model(arch).to(device).to(memory_format=fmt)
    fast_opt = torch.optim.SGD(fast.parameters(), lr=1e-3, momentum=0.9)
    gen = torch.Generator(device=device).manual_seed(0)

    def ferkit_step() -> int:
        xb = augment(x48, gen).contiguous(memory_format=fmt)
        train_step(fast, fast_opt, l2_svm_loss, xb, y, amp)
        return batch_size

    normed = with_batchnorm(create_model(arch)).to(device).to(memory_format=fmt)
    normed_opt = make_optimizer(
        TrainConfig(data="", out="", optimizer="adamw", lr=1e-3, weight_decay=0.05), normed
    )
    average = copy.deepcopy(normed).eval().requires_grad_(False)

    def fast_step(net=normed, precision=amp) -> int:
        xb = augment(x48, gen).contiguous(memory_format=fmt)
        train_step(net, normed_opt, l2_svm_loss, xb, y, precision)
        update_ema(average, normed, 0.998)
        return batch_size

    plain_ips = _time_steps(plain_step, steps, device)
    ferkit_ips = _time_steps(ferkit_step, steps, device)
    fast_ips = _time_steps(fast_step, steps, device)
    fast_fp32_ips = _time_steps(lambda: fast_step(precision=None), steps, device)
    extra = {}
    if compile:  # compiling takes a minute or more; the two warm-up steps absorb it
        compiled = torch.compile(normed)
        compiled_ips = _time_steps(lambda: fast_step(compiled, None), steps, device)
        extra["fast_procedure_fp32_compiled_images_per_s"] = round(compiled_ips, 1)
        if amp is not None:  # and in the precision the run would use (bf16 where it pays)
            compiled_amp = torch.compile(normed)
            amp_ips = _time_steps(lambda: fast_step(compiled_amp, amp), steps, device)
            name = str(amp).replace("torch.", "").replace("bfloat16", "bf16")
            extra[f"fast_procedure_{name}_compiled_images_per_s"] = round(amp_ips, 1)
    return {
        "benchmark": "train",
        "arch": arch,
        "batch_size": batch_size,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "precision": str(amp or torch.float32).replace("torch.", ""),
        "memory_format": "channels_last" if fmt == torch.channels_last else "contiguous",
        "plain_fp32_images_per_s": round(plain_ips, 1),
        "ferkit_images_per_s": round(ferkit_ips, 1),
        "speedup": round(ferkit_ips / plain_ips, 2),
        "fast_procedure_images_per_s": round(fast_ips, 1),
        "fast_procedure_step_cost": round(ferkit_ips / fast_ips, 2),  # x ferkit's plain step
        "fast_procedure_fp32_images_per_s": round(fast_fp32_ips, 1),
        **extra,
    }


def _best_of(fn, repeat: int, inner: int = 1) -> float:
    """Median seconds per call of ``fn`` over ``repeat`` timings of ``inner`` calls."""
    import statistics

    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def bench_evaluate(arch: str, method: str, images: int, device_name: str = "auto") -> dict:
    """Views per second of ``ferkit evaluate``'s scoring path, and what that makes of FER-2013's
    3,589-image test split (the weights do not matter for speed)."""
    import numpy as np

    from .data.preprocess import Normalizer
    from .device import autocast_dtype, resolve_device
    from .fermodel.model import FerModel, ModelMeta
    from .fermodel.views import num_views
    from .models import create_model

    device = resolve_device(device_name)
    norm = Normalizer(torch.zeros(48, 48), torch.ones(48, 48))
    model = FerModel(create_model(arch), norm, ModelMeta(arch=arch, loss="svm")).to(device)
    faces = np.random.default_rng(0).integers(0, 256, (images, 48, 48)).astype(np.uint8)
    dtype = autocast_dtype(device)
    model.score(faces[:2], method, dtype=dtype)  # warm-up
    t0 = time.perf_counter()
    model.score(faces, method, dtype=dtype)
    seconds = time.perf_counter() - t0
    views_per_s = images * num_views(method) / seconds
    return {
        "benchmark": "evaluate",
        "arch": arch,
        "method": method,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "images": images,
        "views_per_s": round(views_per_s, 1),
        "minutes_for_3589_images": round(3589 * num_views(method) / views_per_s / 60, 1),
    }


def photo_640x480(photo: str | None = None) -> bytes:
    """A 640x480 JPEG with one face: ``photo`` (default: scikit-image's astronaut) on a grey canvas."""
    import io

    from PIL import Image

    if photo is None:
        from importlib.resources import files

        photo = str(files("skimage") / "data" / "astronaut.png")
    from .images import load_image  # the checked reader: a FIFO or device is refused

    img = Image.fromarray(load_image(photo))
    canvas = Image.new("RGB", (640, 480), (90, 90, 90))
    img.thumbnail((480, 480))
    canvas.paste(img, ((640 - img.width) // 2, 0))
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def bench_predict(
    model_path: str | None, arch: str, photo: str | None, device: str = "auto"
) -> dict:
    """One face's latency (batch 1, centre view), faces/s at batch 256, and a 640x480 photo
    end to end (decode + detect + classify) with one view and with the default ten, after
    warm-up; on the CPU the same for the int8 network too (calibrated here on the benchmark's
    random faces: speed does not depend on the ranges)."""

    import numpy as np

    from .data.preprocess import Normalizer
    from .fermodel.files import ModelFileError, load_model, shipped_model_path
    from .fermodel.model import FerModel, ModelMeta
    from .models import create_model
    from .predict.recognizer import Recognizer

    if model_path:
        model, weights = load_model(model_path), str(model_path)
    elif shipped_model_path() and (shipped := load_model()).meta.arch == arch:
        model, weights = shipped, "shipped"
    else:
        norm = Normalizer(torch.zeros(48, 48), torch.ones(48, 48))
        model, weights = (
            FerModel(create_model(arch), norm, ModelMeta(arch=arch, loss="svm")),
            "untrained",
        )
    rec = Recognizer(model, device=device)
    jpeg = photo_640x480(photo)
    faces = np.random.default_rng(0).integers(0, 256, (256, 48, 48)).astype(np.uint8)
    one = faces[:1]
    for _ in range(3):  # warm-up
        rec.model.score(one)
        rec.predict(jpeg, views="center")
        rec.predict(jpeg)
    face_ms = 1000 * _best_of(lambda: rec.model.score(one), 7, 20)
    face_eval1_ms = 1000 * _best_of(lambda: rec.model.score(one, "eval1"), 7, 5)
    batch_s = _best_of(lambda: rec.model.score(faces, batch=256), 3)
    detectors = _detector_timings(rec, jpeg)
    photo_ms = 1000 * _best_of(lambda: rec.predict(jpeg, views="center"), 7, 3)
    photo_eval1_ms = 1000 * _best_of(lambda: rec.predict(jpeg, views="eval1"), 7, 3)
    others: dict = {}
    for name in ("int8", "onnx"):
        others.update(dict.fromkeys(_timing_keys(name)))
    if rec.model.norm_mean.device.type == "cpu":
        from .fermodel.int8 import calibrate, quantize

        rec8 = Recognizer(quantize(rec.model, calibrate(rec.model, faces)), device="cpu")
        others.update(_timings(rec8, one, faces, jpeg, "int8"))
        try:
            from .fermodel.onnx import to_onnx_backend

            onnx = Recognizer(to_onnx_backend(rec.model), device="cpu")
        except ModelFileError:  # the extra is not installed: those rows stay empty
            onnx = None
        if onnx is not None:
            others.update(_timings(onnx, one, faces, jpeg, "onnx"))
    return {
        "benchmark": "predict",
        "arch": model.meta.arch,
        "weights": weights,
        "device": str(rec.model.norm_mean.device),
        "threads": torch.get_num_threads(),
        "faces_in_photo": len(rec.predict(jpeg)),
        "detector": rec.detector.__class__.__name__,
        **detectors,
        "one_face_ms": round(face_ms, 2),
        "one_face_eval1_ms": round(face_eval1_ms, 2),
        "faces_per_s_batch256": round(256 / batch_s, 1),
        "photo_640x480_ms": round(photo_ms, 1),
        "photo_640x480_eval1_ms": round(photo_eval1_ms, 1),
        **others,
    }


def _detector_timings(rec, jpeg: bytes) -> dict:
    """The 640x480 photo's decoding (as the detector needs it), and its detection by the
    recognizer's detector and, where OpenCV 4 is installed, by Haar's chain (grey photo)."""
    from .images import as_grey
    from .predict.detect import create_detector

    pixels = rec.decode(jpeg)
    out = {
        "decode_640x480_ms": round(1000 * _best_of(lambda: rec.decode(jpeg), 7, 5), 2),
        "detect_640x480_ms": round(1000 * _best_of(lambda: rec.detector.detect(pixels), 7, 5), 2),
    }
    try:
        haar = create_detector("haar")
    except RuntimeError:  # no OpenCV 4: no Haar row
        return out
    grey = as_grey(pixels)
    out["detect_640x480_haar_ms"] = round(1000 * _best_of(lambda: haar.detect(grey), 5, 3), 2)
    return out


def _timing_keys(name: str) -> tuple[str, str, str]:
    return (f"one_face_{name}_ms", f"faces_per_s_batch256_{name}", f"photo_640x480_{name}_ms")


def _timings(rec, one, faces, jpeg, name: str) -> dict:
    """One face, a batch of 256 and a 640x480 photo (centre crop) with another backend."""
    for _ in range(3):  # warm-up
        rec.model.score(one)
        rec.predict(jpeg, views="center")
    face, batch, photo = _timing_keys(name)
    return {
        face: round(1000 * _best_of(lambda: rec.model.score(one), 7, 20), 2),
        batch: round(256 / _best_of(lambda: rec.model.score(faces, batch=256), 3), 1),
        photo: round(1000 * _best_of(lambda: rec.predict(jpeg, views="center"), 7, 3), 1),
    }


#: ``ferkit serve`` options of each measured configuration: today's default, the server as it
#: was before it batched (one request's faces at a time, one inference thread, torch on all
#: its threads: :data:`BEFORE_BATCHING`), and the default with ONNX Runtime running the same
#: network (when onnxruntime is installed).
SERVE_VARIANTS = {
    "batched": [],
    "one_at_a_time": ["--workers", "1", "--batch-window-ms", "0"],
    "one_at_a_time_haar": ["--workers", "1", "--batch-window-ms", "0", "--detector", "haar"],
    "batched_onnx": ["--backend", "onnx"],
}
#: The variants that are the server before batching: they get torch's own thread count, the
#: server's default then (now half of it), so that the speed-up is not flattered.
BEFORE_BATCHING = ("one_at_a_time", "one_at_a_time_haar")


def bench_serve(model: str | None, photo: str | None, clients: int, requests: int) -> dict:
    """``ferkit serve`` on loopback, in each of :data:`SERVE_VARIANTS`, driven by ``clients``
    concurrent clients for ``requests`` POSTs of a 640x480 photo; a client retries a 503 after
    20 ms. Throughput, latency percentiles (of answered requests, retries included), 503s and
    other errors per variant, and the batched server's speed-up, all in one run."""
    import importlib.util

    import torch

    all_threads = ["--threads", str(torch.get_num_threads())]
    out: dict = {"benchmark": "serve", "clients": clients, "requests": requests}
    for name, options in SERVE_VARIANTS.items():
        if "onnx" in name and importlib.util.find_spec("onnxruntime") is None:
            continue
        if "haar" in name and not _has_haar():
            continue
        if name in BEFORE_BATCHING:
            options = [*options, *all_threads]
        r = {
            "options": " ".join(options),
            **_drive_server(model, photo, clients, requests, options),
        }
        prefix = "" if name == "batched" else f"{name}_"
        out.update({f"{prefix}{k}": v for k, v in r.items()})
    before = max(out["one_at_a_time_requests_per_s"], 1e-9)
    out["speedup"] = round(out["requests_per_s"] / before, 2)
    if "batched_onnx_requests_per_s" in out:
        out["speedup_onnx"] = round(out["batched_onnx_requests_per_s"] / before, 2)
    if "one_at_a_time_haar_requests_per_s" in out:  # the server before BlazeFace
        haar = max(out["one_at_a_time_haar_requests_per_s"], 1e-9)
        out["speedup_over_haar"] = round(out["requests_per_s"] / haar, 2)
    return out


def _drive_server(
    model: str | None, photo: str | None, clients: int, requests: int, options: list[str]
) -> dict:
    import http.client
    import socket
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    jpeg = photo_640x480(photo)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "ferkit.cli.main",
        "serve",
        "--port",
        str(port),
        "--quiet",
        *options,
    ]
    if model:
        cmd += ["--model", model]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_healthy(port, server)

        def one(_):
            t0, busy = time.perf_counter(), 0
            while True:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                try:
                    conn.request(
                        "POST", "/v1/predict", body=jpeg, headers={"Content-Type": "image/jpeg"}
                    )
                    status = conn.getresponse().status
                except OSError:
                    status = 0
                finally:
                    conn.close()
                if status != 503:
                    return time.perf_counter() - t0, status, busy
                busy += 1
                time.sleep(0.02)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(one, range(requests)))
        wall = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)
    lat = np.array([r[0] for r in results])
    failed = [r[1] for r in results if r[1] != 200]
    return {
        "errors": len(failed),
        "error_statuses": {str(k): failed.count(k) for k in sorted(set(failed))},  # 0: no answer
        "busy_503": int(sum(r[2] for r in results)),
        "requests_per_s": round(requests / wall, 1),
        "p50_ms": round(1000 * float(np.percentile(lat, 50)), 1),
        "p99_ms": round(1000 * float(np.percentile(lat, 99)), 1),
        "seconds": round(wall, 1),
    }


def wait_healthy(port: int, server, timeout: float = 120) -> None:
    """Wait until the server started as ``server`` answers /healthz on ``port``."""
    import http.client

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {server.stderr.read().decode()[-500:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not become healthy in time")


def bench_engine(model: str | None, photo: str | None, photos: int, workers: list[int]) -> dict:
    """``predict`` over one folder of ``photos`` 640x480 JPEGs (the photo shifted a little each
    time), with the local path (1 thread, then all of torch's) and with Ray's pools of each
    size in ``workers``, one run; Ray's cluster start is timed apart, its actors' start-up
    (each loads the model) is inside each row. Overhead per photo: Ray with 1 worker against
    the local path with 1 thread, which do the same work."""
    import io
    import tempfile
    from pathlib import Path

    from PIL import Image

    from .predict.files import predict_paths
    from .predict.ray_engine import RecognizerSpec, predict_paths_ray, start_ray, stop_ray
    from .predict.recognizer import Recognizer

    base = Image.open(io.BytesIO(photo_640x480(photo)))
    rows: dict = {}
    with tempfile.TemporaryDirectory(prefix="ferkit-engine-") as tmp:
        for i in range(photos):
            shifted = Image.new("RGB", base.size, (90, 90, 90))
            shifted.paste(base, ((i % 21) - 10, (i // 21 % 11) - 5))
            shifted.save(Path(tmp) / f"{i:05d}.jpg", quality=90)
        threads = torch.get_num_threads()
        for n in sorted({1, threads}):
            torch.set_num_threads(n)
            t = time.perf_counter()
            predict_paths(Recognizer(model), [tmp], progress=False, emit=lambda _: None)
            rows[f"local_{n}_thread"] = time.perf_counter() - t
        torch.set_num_threads(threads)
        t = time.perf_counter()
        start_ray(cpus=max(workers))
        ray_start = time.perf_counter() - t
        try:
            for n in workers:
                t = time.perf_counter()
                predict_paths_ray(
                    [tmp], RecognizerSpec(model=model), workers=n, emit=lambda _: None
                )
                rows[f"ray_{n}_worker"] = time.perf_counter() - t
        finally:
            stop_ray()
    per_photo = (rows.get("ray_1_worker", float("nan")) - rows["local_1_thread"]) / photos
    return {
        "benchmark": "engine",
        "photos": photos,
        "ray_cluster_start_s": round(ray_start, 1),
        **{f"{k}_photos_per_s": round(photos / v, 1) for k, v in rows.items()},
        **{f"{k}_s": round(v, 1) for k, v in rows.items()},
        "ray_overhead_ms_per_photo": round(1000 * per_photo, 2),
    }


def _has_haar() -> bool:
    try:
        from .predict.detect import create_detector

        create_detector("haar")
    except RuntimeError:
        return False
    return True


def bench_video(model: str | None, photo: str | None, frames: int) -> dict:
    """``predict`` on a generated 640x480 clip of ``frames`` frames (the photo's face moving a
    little each frame, 30 frames/s), end to end: decoding, detection, the face's crop, the
    network, tracking; with the centre view, then Eval1's ten. Frames analysed per second."""
    import io
    import tempfile
    from pathlib import Path

    import cv2
    import numpy as np
    from PIL import Image

    from .predict.files import predict_paths
    from .predict.recognizer import Recognizer

    base = np.asarray(Image.open(io.BytesIO(photo_640x480(photo))))
    out: dict = {"benchmark": "video", "frames": frames, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory(prefix="ferkit-video-") as tmp:
        clip = Path(tmp) / "clip.mp4"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
        for k in range(frames):
            dx, dy = round(20 * np.sin(k / 15)), round(10 * np.cos(k / 20))
            writer.write(np.ascontiguousarray(np.roll(base, (dy, dx), axis=(0, 1))[..., ::-1]))
        writer.release()
        for views in ("center", "eval1"):
            rec = Recognizer(model, views=views)
            predict_paths(
                rec, [str(clip)], progress=False, every=max(1, frames // 10), emit=lambda _: None
            )  # warm-up
            t = time.perf_counter()
            summary = predict_paths(rec, [str(clip)], progress=False, emit=lambda _: None)
            wall = time.perf_counter() - t
            out[f"{views}_frames_per_s"] = round(frames / wall, 1)
            out[f"{views}_faces"] = summary.faces
    return out
