"""The ``ferkit`` command line: thin argument parsing over the workflows.

Machine output (``--json``) goes to stdout; progress and messages go to stderr. A user
mistake is one line on stderr and exit status 2 (usage) or 1 (bad input), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .argtypes import (
    COUNT,
    NON_NEGATIVE,
    PORT,
    POSITIVE,
    POSITIVE_INT,
    add_device_option,
    add_json_option,
    add_threads_option,
)
from .data import DATA_HELP
from .device import PRECISIONS
from .images import MAX_PIXELS
from .train_config import SCHEDULES, add_train_options

EXIT_INPUT, EXIT_USAGE = 1, 2


class UsageError(ValueError):
    """A mistake in the command's arguments (exit status 2)."""


def _models_args(sp: argparse.ArgumentParser) -> None:
    add_json_option(sp, "a JSON list")


def _cmd_models(args: argparse.Namespace) -> int:
    import dataclasses

    from .models import list_models, model_info

    infos = [model_info(n) for n in list_models()]
    if args.json:
        print(json.dumps([dataclasses.asdict(i) | {"input": list(i.input)} for i in infos]))
        return 0
    print(f"{'network':<10} {'parameters':>12} {'MACs/image':>14}  input")
    for i in infos:
        print(f"{i.name:<10} {i.params:>12,} {i.macs:>14,}  {'x'.join(map(str, i.input))}")
    return 0


def _data_args(sp: argparse.ArgumentParser) -> None:
    _data_file_args(sp)
    add_json_option(sp)
    sp.add_argument(
        "--save",
        metavar="FILE",
        help="also write a compact copy (.npz, or .npz.xz: FER-2013 in ~60 MB) that every "
        "--data option reads",
    )


def _cmd_data(args: argparse.Namespace) -> int:
    from .labels import LABELS

    ds = _read_data(args)
    if args.save:
        from .data import save_compact

        try:
            print(f"ferkit: wrote {save_compact(ds, args.save)}", file=sys.stderr)
        except ValueError as e:
            raise UsageError(str(e)) from None
    s = ds.summary()
    if args.json:
        print(json.dumps(s))
    else:
        print(f"{ds.path} ({ds.format})")
        print(f"{'split':<12} {'n':>7}  " + " ".join(f"{lab:>8}" for lab in LABELS))
        for name, sp in s["splits"].items():
            counts = " ".join(f"{sp['counts'][lab]:>8}" for lab in LABELS)
            print(f"{name:<12} {sp['n']:>7}  {counts}")
    _report_skipped(ds)
    return 0


def _read_data(args: argparse.Namespace):
    """The data set of ``_data_file_args``' options."""
    from .data import load_fer2013

    return load_fer2013(
        args.data, on_error="skip" if args.skip_bad else "raise", resize=args.resize
    )


def _report_skipped(ds) -> None:
    if ds.n_skipped:
        print(f"ferkit: {ds.skipped_message()}", file=sys.stderr)


def _train_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--resume", metavar="RUN", help="continue the run in RUN with its stored settings"
    )
    sp.add_argument(
        "--overwrite",
        action="store_true",
        help="start again in an --out folder that already holds a run (refused without it)",
    )
    add_train_options(sp)  # every TrainConfig field, its help and check beside the field


def _cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from .run_folder import load_run_config
    from .train import train
    from .train_config import config_from_options, resume_overrides

    if args.resume:
        cfg = dataclasses.replace(
            load_run_config(args.resume), out=args.resume, **resume_overrides(vars(args))
        )
        train(cfg, resume=True)
        return 0
    if not args.data or not args.out:
        raise UsageError("train needs --data PATH and --out RUN (or --resume RUN)")
    train(config_from_options(vars(args)), overwrite=args.overwrite)
    return 0


def _evaluate_args(sp: argparse.ArgumentParser) -> None:
    _model_args(sp)
    _data_file_args(sp)
    sp.add_argument(
        "--method",
        choices=["center", "eval1", "eval2", "all"],
        default="center",
        help="views per image: 1, 10 or 648; all = the three",
    )
    sp.add_argument(
        "--split", nargs="+", help="splits to score (default: every test split present)"
    )
    sp.add_argument("--out", help="folder for report.json, report.md, confusion.png")
    sp.add_argument(
        "--resume",
        metavar="DIR",
        help="save scores in DIR every 256 images; the same command run again after an "
        "interruption continues there (Eval2 of a deep network takes hours on a CPU)",
    )
    sp.add_argument(
        "--by-view",
        action="store_true",
        help="also the accuracy from each rescaling and each rotation of Eval1/Eval2's views "
        "alone, and from rotations up to +-a degrees (same views, no extra cost)",
    )
    add_threads_option(sp)
    add_json_option(sp, "report.json's object")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import warnings

    from .checkpoint import file_sha256, model_file, shipped_model_path
    from .device import resolve_device
    from .evaluate import evaluate, report_dict, write_reports
    from .onnx_model import load_with_backend
    from .views import METHODS

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model = load_with_backend(
        args.model,
        resolve_device(args.device, args.int8 or args.backend == "onnx"),
        int8=args.int8,
        backend=args.backend,
    )
    data = _read_data(args)
    _report_skipped(data)
    methods = list(METHODS) if args.method == "all" else [args.method]
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda msg, *a, **k: print(
            f"ferkit: warning: {msg}", file=sys.stderr
        )
        model_id = ""
        if args.resume:  # saved scores are reused only for these exact weights and precision
            weights = model_file(args.model) if args.model else shipped_model_path()
            model_id = (
                file_sha256(weights)
                + ("+int8" if args.int8 else "")
                + ("+onnx" if args.backend == "onnx" else "")
            )
        results = evaluate(
            model,
            data,
            args.split,
            methods,
            progress=not args.json,
            resume_dir=args.resume,
            model_id=model_id,
            by_view=args.by_view,
            precision=args.precision,
        )
    report = report_dict(model, args.model, results)
    if args.out:
        write_reports(report, results, args.out)
    if args.json:
        print(json.dumps(report))
    else:
        for r in results:
            print(
                f"{r.split:<12} {r.method:<7} {r.views:>4} views  {r.n:>6} images  "
                f"accuracy {100 * r.accuracy:6.2f} %  ({r.seconds:.1f} s)"
            )
            if r.calibration:
                c = r.calibration
                at = f"temperature {c['temperature']}" if c["temperature"] else "no temperature"
                print(
                    f"{'':<21}calibration error (ECE) {100 * c['ece_softmax']:.1f} % with the "
                    f"plain softmax, {100 * c['ece']:.1f} % with the model's ({at})"
                )
            for group, accs in (r.by_view or {}).items():
                cells = "  ".join(f"{k}: {100 * a:.2f}" for k, a in accs.items())
                print(f"{'':<21}{group:<10} {cells}")
        if args.out:
            print(
                f"wrote {args.out}/report.json, report.md, confusion.png, reliability.png",
                file=sys.stderr,
            )
    return 0


def _recognizer_options(args: argparse.Namespace) -> dict:
    """``predict``'s options as :class:`~ferkit.predict.Recognizer` arguments, for both engines."""
    from .predict import DEFAULT_MARGIN

    return dict(
        int8=args.int8,
        backend=args.backend,
        precision=args.precision,
        views=args.views,
        margin=DEFAULT_MARGIN if args.margin is None else args.margin,
        max_pixels=int(args.max_megapixels * 1e6),
    )


def _predict_ray(args: argparse.Namespace, labels: dict[str, str] | None):
    """``predict --engine ray``: the same records from a pool of Ray actors."""
    from .ray_engine import RecognizerSpec, output_format, predict_paths_ray

    if args.camera is not None:
        raise UsageError("--camera runs locally: leave out --engine ray")
    if args.device not in ("auto", "cpu"):
        raise UsageError("--engine ray runs each worker on one CPU: leave out --device")
    try:
        output_format(args.out)
    except ValueError as e:
        raise UsageError(str(e)) from None
    spec = RecognizerSpec(
        model=None if args.model is None else os.path.abspath(args.model),
        detect=not args.no_detect,
        every=args.every,
        **_recognizer_options(args),
    )
    try:
        return predict_paths_ray(
            args.paths,
            spec,
            out=args.out,
            workers=args.workers,
            address=args.address,
            labels=labels,
        )
    except ImportError as e:
        raise UsageError(str(e)) from None


def _predict_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("paths", nargs="*", metavar="PATH", help="images, folders or videos")
    _model_args(sp)
    sp.add_argument(
        "--views",
        choices=["center", "eval1"],
        default="eval1",
        help="test-time views per face: eval1 = 10 crops (steadier on real photos), center = "
        "one (about 10x less network time)",
    )
    sp.add_argument("--no-detect", action="store_true", help="each input is already a cropped face")
    sp.add_argument("--labels", metavar="CSV", help="file,label CSV: print the accuracy summary")
    sp.add_argument(
        "--out",
        help="folder for annotated copies of images and videos (--engine ray: the records "
        "file, .jsonl or .parquet)",
    )
    add_json_option(sp, "JSON lines, one a face")
    sp.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local (default): this process; ray: a pool of Ray Data workers, each with its own "
        "copy of the model, videos split into frame ranges; prints JSON lines, or writes them "
        "to --out (pip install 'ferkit[ray]')",
    )
    sp.add_argument(
        "--workers",
        type=POSITIVE_INT,
        help="--engine ray: workers, one CPU each (default: one per CPU of the cluster)",
    )
    sp.add_argument(
        "--address",
        help="--engine ray: an existing Ray cluster (e.g. ray://head:10001 or auto); default: a "
        "local cluster sized to this machine (or to --workers)",
    )
    sp.add_argument(
        "--every", type=POSITIVE_INT, default=1, help="videos: analyse every N-th frame"
    )
    sp.add_argument(
        "--margin",
        type=NON_NEGATIVE,
        help="context around each detected face, as a fraction of its side (default 0: "
        "FER-2013 frames a face as the detector's box)",
    )
    _max_megapixels_arg(sp, "are refused")
    sp.add_argument(
        "--camera",
        type=COUNT,
        metavar="N",
        help="live window on camera N (needs a display and a GUI build of OpenCV, "
        "opencv-python; the headless build in ferkit[detect] cannot open windows)",
    )


def _cmd_predict(args: argparse.Namespace) -> int:
    from .batch import predict_paths, read_labels, run_camera
    from .predict import Recognizer

    if args.engine == "ray":  # each worker loads the model itself
        if not args.paths:
            raise UsageError("predict needs image, folder or video paths")
        labels = read_labels(args.labels) if args.labels else None
        return _predict_done(args, labels, _predict_ray(args, labels))
    rec = Recognizer(args.model, device=args.device, **_recognizer_options(args))
    if args.camera is not None:
        try:
            run_camera(rec, args.camera)
        except RuntimeError as e:
            raise UsageError(str(e)) from None
        return 0
    if not args.paths:
        raise UsageError("predict needs image, folder or video paths (or --camera N)")
    labels = read_labels(args.labels) if args.labels else None
    summary = predict_paths(
        rec,
        args.paths,
        detect=not args.no_detect,
        out=args.out,
        as_json=args.json,
        labels=labels,
        every=args.every,
    )
    return _predict_done(args, labels, summary)


def _predict_done(args: argparse.Namespace, labels: dict[str, str] | None, summary) -> int:
    """The labels summary (stderr, and --json's last line), and the exit status."""
    if labels is not None:
        s = summary.to_dict()
        text = (
            f"{s['files']} files, a face in {s['with_face']}, "
            f"largest face's label right for {s.get('correct', 0)} of {s.get('labelled', 0)} labelled"
            + (f" ({100 * s['accuracy']:.1f} %)" if "accuracy" in s else "")
        )
        print(f"ferkit: {text}", file=sys.stderr)
        if s.get("per_class"):
            rows = [f"{k} {v['correct']}/{v['labelled']}" for k, v in s["per_class"].items()]
            print("ferkit: right per true label: " + ", ".join(rows), file=sys.stderr)
        if args.json:
            print(json.dumps({"summary": s}))
    return EXIT_INPUT if summary.failed else 0


def _serve_args(sp: argparse.ArgumentParser) -> None:
    _model_args(sp)
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sp.add_argument("--port", type=PORT, default=8000, help="port to listen on")
    sp.add_argument("--max-upload-mb", type=POSITIVE, default=10, help="larger uploads get 413")
    _max_megapixels_arg(sp, "get 413")
    sp.add_argument(
        "--timeout",
        type=POSITIVE,
        default=30,
        metavar="S",
        help="a client that sends nothing for S seconds mid-upload is answered 408 and dropped "
        "(default 30)",
    )
    sp.add_argument(
        "--queue",
        type=POSITIVE_INT,
        default=16,
        help="requests admitted at once (running + waiting); more get 503",
    )
    sp.add_argument(
        "--max-inflight-mb",
        type=POSITIVE,
        default=64,
        metavar="MB",
        help="uploads admitted at once, by their Content-Length (a body without one counts as "
        "--max-upload-mb); more get 503 before their body is read. One request is always "
        "admitted when none is",
    )
    sp.add_argument(
        "--workers",
        type=POSITIVE_INT,
        help="threads decoding and detecting uploads (default: 8 a core, at most 64: the more "
        "faces are found at once, the larger the network's batches)",
    )
    sp.add_argument(
        "--decode-megapixels",
        type=POSITIVE,
        default=24.0,
        metavar="MP",
        help="decoded photos held at once, in megapixels (default 24: two 10 MB phone photos); "
        "more wait their turn, one is always decoded",
    )
    sp.add_argument(
        "--batch-window-ms",
        type=NON_NEGATIVE,
        default=5,
        metavar="MS",
        help="how long the faces of one request wait for other requests' faces to share a "
        "network call (0: no batching, each request's faces alone)",
    )
    sp.add_argument(
        "--max-batch",
        type=POSITIVE_INT,
        default=64,
        help="faces per network call at most",
    )
    sp.add_argument(
        "--cors", nargs="+", metavar="ORIGIN", help="allow these origins (CORS is off by default)"
    )
    sp.add_argument("--quiet", action="store_true", help="no access log")


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .serve import ServeConfig, create_app
        from .serve.app import return_freed_memory
    except ImportError:
        raise UsageError("ferkit serve needs its extra: pip install 'ferkit[serve]'") from None
    from .predict import Recognizer

    rec = Recognizer(
        args.model,
        device=args.device,
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
    print(
        f"ferkit: serving on http://{args.host}:{args.port}/ (API docs at /docs)", file=sys.stderr
    )
    return_freed_memory()
    uvicorn.run(
        create_app(rec, cfg),
        host=args.host,
        port=args.port,
        log_level="warning" if args.quiet else "info",
    )
    return 0


def _reproduce_args(sp: argparse.ArgumentParser) -> None:
    from .reproduce import EXPERIMENTS, RECIPES
    from .reproduce.catalogue import FAST_EXPERIMENTS, PROXY_EXPERIMENTS

    fast = dict.fromkeys(e.name for e in FAST_EXPERIMENTS if e.table == "fast")
    sp.description = (
        "Train and evaluate every model of Tables IV-IX (skipping finished ones, resuming "
        "interrupted ones), write one summary JSON per experiment and regenerate REPRODUCTION.md "
        "from the summaries. Experiments: "
        + ", ".join(e.name for e in EXPERIMENTS)
        + ". The same rows with the fast procedure, 25 epochs (run when named; bkvgg12-svm's is "
        "the recipe bkvgg12-svm-fast): "
        + ", ".join(fast)
        + ". Recipes for short budgets (run when named): "
        + ", ".join(e.name for e in RECIPES)
        + ". The lever study's proxy runs (BKVGG12 + SVM, 10 epochs, validation only; run "
        "when named, with --threads 1): " + ", ".join(e.name for e in PROXY_EXPERIMENTS) + "."
    )
    sp.add_argument("--data", help=DATA_HELP)
    sp.add_argument("--out", help="folder for the runs (figures go beside the summaries)")
    sp.add_argument(
        "--experiments", nargs="+", metavar="NAME", help="which (default: all the paper's)"
    )
    sp.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: regenerate the report and the pictures drawn from the summaries "
        "(after changing ferkit, or when a run started on older code wrote the report)",
    )
    sp.add_argument(
        "--epochs",
        type=POSITIVE_INT,
        default=60,
        help="training budget per experiment (a recipe that varies the epochs keeps its own)",
    )
    sp.add_argument(
        "--schedule",
        default="onecycle",
        choices=SCHEDULES,
        help="learning-rate schedule of every experiment that does not set its own (default "
        "onecycle: a fixed budget suits --epochs)",
    )
    sp.add_argument(
        "--lr",
        type=POSITIVE,
        default=0.01,
        help="(peak) learning rate (a recipe that varies it keeps its own)",
    )
    add_threads_option(sp)
    sp.add_argument(
        "--by-view",
        action="store_true",
        help="re-run the Eval2 of finished experiments whose summary lacks its view-by-view "
        "breakdown (as long as their first Eval2); finished experiments are not trained on, "
        "whatever --epochs says",
    )
    sp.add_argument("--summaries", default="reproduction", help="folder of the summary JSON files")
    sp.add_argument("--report", default="REPRODUCTION.md", help="the report to regenerate")


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import Budget, reproduce, write_report, write_summary_figures

    if args.report_only:
        write_summary_figures(Path(args.summaries))
        text = write_report(Path(args.summaries), Path(args.report))
    elif not (args.data and args.out):
        raise UsageError("reproduce needs --data PATH and --out DIR (or --report-only)")
    else:
        budget = Budget(
            epochs=args.epochs, schedule=args.schedule, lr=args.lr, threads=args.threads
        )
        text = reproduce(
            args.data, args.out, args.experiments, budget, args.summaries, args.report, args.by_view
        )
    print(f"ferkit: wrote {args.report} ({len(text.splitlines())} lines)", file=sys.stderr)
    return 0


def _export_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--model", required=True, help="model.safetensors or run folder")
    sp.add_argument("--out", required=True, help="file to write")
    sp.add_argument(
        "--format",
        choices=["safetensors", "onnx"],
        default="safetensors",
        help="safetensors (default: ferkit's own file) or onnx (for any ONNX runtime; fp32, "
        "with the normalisation, labels, loss and card in its metadata; --verify-data checks "
        "ONNX Runtime against torch and writes nothing past max |score difference| 1e-3 or "
        "below 99.9 %% identical predictions)",
    )
    sp.add_argument(
        "--onnx-input",
        choices=["crops", "faces"],
        default="crops",
        help="--format onnx: crops (default: the network on normalised 42x42 crops, what "
        "--backend onnx runs) or faces (48x48 uint8 grey faces in; both preprocessing steps, "
        "Eval1's 10 crops and the calibrated probabilities inside: outputs scores and "
        "probabilities, for users without ferkit)",
    )
    sp.add_argument(
        "--dtype",
        choices=["fp16", "fp32"],
        default="fp16",
        help="weights' precision in the file (default fp16: half the size)",
    )
    sp.add_argument("--card", help="JSON object merged into the model card (overrides fields)")
    sp.add_argument(
        "--summary",
        metavar="JSON",
        help="a ferkit reproduce summary (reproduction/NAME.json): command, wall time, machine "
        "and test accuracies for the card",
    )
    sp.add_argument(
        "--verify-data",
        metavar="PATH",
        help="FER-2013 data to compare fp16 with fp32 on (not for weights already fp16: their "
        "card keeps its check) and to fit a missing temperature on (its validation faces)",
    )
    _precision_check_args(sp, "fp16", "--verify-data", tolerance=0.1)


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_model

    card = json.loads(args.card) if args.card else None
    if card is not None and not isinstance(card, dict):
        raise UsageError("--card must be a JSON object")
    summary = None
    if args.summary:
        try:
            with open(args.summary) as fh:
                summary = json.load(fh)
        except (OSError, ValueError) as e:
            raise UsageError(f"{args.summary}: not a reproduce summary ({e})") from None
    if args.format == "onnx":
        from .export import export_onnx

        parity = export_onnx(
            args.model,
            args.out,
            card,
            args.verify_data,
            args.split,
            args.method,
            onnx_input=args.onnx_input,
        )
        if parity:
            print(
                f"ferkit: ONNX Runtime against torch on {parity.split} ({parity.method}, "
                f"{parity.n} faces): max |score difference| {parity.max_score_difference:.2e}, "
                f"{100 * parity.same_predictions:.2f} % identical predictions",
                file=sys.stderr,
            )
        print(f"ferkit: wrote {args.out}", file=sys.stderr)
        return 0
    check = export_model(
        args.model,
        args.out,
        args.dtype,
        card,
        args.verify_data,
        args.split,
        args.method,
        args.tolerance,
        summary=summary,
    )
    if check:
        print(f"ferkit: {check.line()}", file=sys.stderr)
    elif args.verify_data and args.dtype == "fp16":
        print(
            f"ferkit: {args.model} holds fp16 weights already: the fp16 check on its card is kept",
            file=sys.stderr,
        )
    print(f"ferkit: wrote {args.out}", file=sys.stderr)
    return 0


def _quantize_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--model", help="model.safetensors or run folder (default: the shipped model)")
    sp.add_argument("--data", required=True, help=DATA_HELP)
    sp.add_argument(
        "--faces", type=POSITIVE_INT, default=2048, help="Training faces to calibrate on"
    )
    _precision_check_args(sp, "int8", "--data", tolerance=0.5)
    sp.add_argument("--no-check", action="store_true", help="skip the fp32/int8 comparison")
    sp.add_argument("--seed", type=COUNT, default=0, help="which random faces")
    sp.add_argument("--quiet", action="store_true", help="no progress bars")


def _cmd_quantize(args: argparse.Namespace) -> int:
    from .export import PrecisionCheck, quantize_model

    out, cal = quantize_model(
        args.model,
        args.data,
        faces=args.faces,
        split=None if args.no_check else args.split,
        method=args.method,
        tolerance=args.tolerance,
        seed=args.seed,
        progress=not args.quiet,
    )
    if cal.check:
        print(f"ferkit: {PrecisionCheck.from_dict(cal.check).line()}", file=sys.stderr)
    print(f"ferkit: wrote {out} ({len(cal.ranges)} activation ranges)", file=sys.stderr)
    return 0


def _augment_preview_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--data", required=True, help=DATA_HELP)
    sp.add_argument("--out", required=True, help="PNG file to write")
    sp.add_argument("--faces", type=POSITIVE_INT, default=6, help="how many faces (rows)")
    sp.add_argument("--per-face", type=POSITIVE_INT, default=7, help="augmented versions per face")
    sp.add_argument("--seed", type=COUNT, default=0, help="random seed")
    from .train_config import AUGMENT_OPTIONS, add_train_options

    add_train_options(sp, only=AUGMENT_OPTIONS)  # as `train` takes them


def _cmd_augment_preview(args: argparse.Namespace) -> int:
    from .data import preview_faces
    from .figures import augment_preview
    from .train_config import augment_config

    faces = preview_faces(args.data, args.faces, args.seed)
    aug = augment_config(vars(args))
    augment_preview(faces.images, faces.labels, args.out, args.per_face, args.seed, aug)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _benchmark_args(sp: argparse.ArgumentParser) -> None:
    from .benchmark import add_arguments as add_benchmark_args

    add_benchmark_args(sp)
    add_json_option(sp)


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from . import benchmark

    try:
        result = benchmark.run(args.what, args)
    except ImportError as e:  # an optional extra the benchmark needs (e.g. engine: ferkit[ray])
        raise UsageError(str(e)) from None
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:<28} {v}")
    return 0


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show a default only where it says something: not for flags, unset options or help
    texts that state their own."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


@dataclass(frozen=True)
class Command:
    """One ``ferkit`` command: its handler, the function that adds its options, its help."""

    name: str
    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None]
    help: str
    description: str | None = None  # --help's paragraph (default: the help line)


#: Every command, in the order ``ferkit --help`` lists them.
COMMANDS: tuple[Command, ...] = (
    Command(
        "models",
        _cmd_models,
        _models_args,
        "list the networks: parameters, multiply-accumulates, input",
        "List the paper's networks (Tables I-II) with their exact parameter counts (Table III), "
        "multiply-accumulates per 42x42 image and input shape.",
    ),
    Command(
        "data",
        _cmd_data,
        _data_args,
        "read a FER-2013 file and report its splits and class counts",
        "Read FER-2013 (Kaggle's fer2013.csv, plain or .gz, or the train/<label>/ image-folder "
        "layout, or a compact copy made by --save) and report its format, splits and class "
        "counts. Bad rows stop the read with file, line and reason unless --skip-bad is given.",
    ),
    Command(
        "train",
        _cmd_train,
        _train_args,
        "train a network on FER-2013 (resumable)",
        "Train one of the paper's networks. Writes RUN/model.safetensors (best validation "
        "weights), checkpoint.pt, metrics.jsonl and curves.png. Runs under torchrun for "
        "several processes. Interrupted runs continue with --resume RUN.",
    ),
    Command(
        "evaluate",
        _cmd_evaluate,
        _evaluate_args,
        "accuracy with the paper's test-time views",
        "Score test splits with single centre crops, Eval1 (10 crops) or Eval2 (648 views), "
        "averaging SVM scores or CE probabilities over views. Prints accuracy per split and "
        "method; --out writes report.json, report.md (Table IX form) and confusion.png.",
    ),
    Command(
        "predict",
        _cmd_predict,
        _predict_args,
        "the emotion of every face in photos, folders and videos",
        "Detect faces (OpenCV Haar cascade), frame each like a FER-2013 face, and classify it. "
        "PATHs may be images, folders (searched recursively) or videos. Prints one line per face "
        "(--json: one JSON object per face); files that cannot be read get a line on stderr and "
        "make the exit status 1, files with no face only get the line.",
    ),
    Command(
        "serve",
        _cmd_serve,
        _serve_args,
        "an HTTP API and a web page (photo upload or live webcam)",
        "Serve POST /v1/predict, GET /v1/model, GET /healthz, the API docs at /docs and a web "
        "page at / (choose or drop a photo, or use the webcam; browsers allow the webcam only on "
        "localhost or https). Everything is served locally: no CDN, no internet.",
    ),
    Command(
        "reproduce",
        _cmd_reproduce,
        _reproduce_args,
        "run the paper's experiments and regenerate REPRODUCTION.md",
    ),
    Command(
        "export",
        _cmd_export,
        _export_args,
        "write a model as fp16 (or fp32) safetensors with a model card, for shipping",
        "Re-save a trained model in fp16 (about half the size) or fp32 with a model card (training "
        "recipe, accuracies, data terms, known limits) in its metadata and as Markdown beside it "
        "(OUT with .md). With --verify-data, fp32 and fp16 are scored on the same split and the export "
        "is refused when they differ by more than --tolerance accuracy points.",
    ),
    Command(
        "quantize",
        _cmd_quantize,
        _quantize_args,
        "calibrate a model for int8 inference on the CPU (about 2x faster for one face)",
        "Measure the range of every activation on random Training faces and write them beside "
        "the weights (x.safetensors -> x.int8.json); --int8 on evaluate, predict and serve then "
        "runs the int8 network, rebuilt from the fp32 weights and these ranges. fp32 and int8 are "
        "scored on the same split first, and nothing is written when int8 is more than "
        "--tolerance points worse.",
    ),
    Command(
        "augment-preview",
        _cmd_augment_preview,
        _augment_preview_args,
        "draw faces beside augmented versions (Fig. 1)",
    ),
    Command(
        "benchmark",
        _cmd_benchmark,
        _benchmark_args,
        "measure speed: train (against plain fp32), evaluate, predict, serve (load)",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ferkit",
        description="Facial expression recognition with the BKVGG networks of Sang, Dat & Thuan "
        "(2017): train on FER-2013, evaluate with the paper's multi-crop tests, predict.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for c in COMMANDS:
        sp = sub.add_parser(
            c.name,
            help=c.help,
            description=c.description or c.help,
            formatter_class=_HelpFormatter,
        )
        sp.set_defaults(func=c.run)
        c.arguments(sp)
    return p


def _model_args(sp: argparse.ArgumentParser) -> None:
    """--model, --device, --backend, --int8 and --precision, as every command that runs a
    trained model takes them."""
    sp.add_argument(
        "--model",
        help="model.safetensors, run folder or (--backend onnx) .onnx file (default: the shipped "
        "model)",
    )
    add_device_option(sp)
    sp.add_argument(
        "--backend",
        choices=["torch", "onnx"],
        default="torch",
        help="torch (default), or onnx: ONNX Runtime on the CPU, from a .onnx file or any model "
        "converted on load (pip install 'ferkit[onnx]')",
    )
    sp.add_argument(
        "--int8",
        action="store_true",
        help="run the int8 network on the CPU (about 2x faster for one face); needs the "
        "calibration `ferkit quantize` writes beside the weights",
    )
    sp.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="the network's compute precision: auto = bf16 autocast on CPUs with bf16 "
        "instructions and on CUDA, else fp32 (bf16 moves accuracy by ~0.1 point; evaluate "
        "records what was used); int8 and ONNX Runtime models compute as they are",
    )


def _max_megapixels_arg(sp: argparse.ArgumentParser, larger: str) -> None:
    """--max-megapixels, the decompression-bomb guard of predict and serve (the same default)."""
    sp.add_argument(
        "--max-megapixels",
        type=POSITIVE,
        default=MAX_PIXELS / 1e6,
        help=f"larger images {larger} (a guard against decompression bombs)",
    )


def _precision_check_args(
    sp: argparse.ArgumentParser, precision: str, data_option: str, tolerance: float
) -> None:
    """--split, --method and --tolerance of the check that a lower-precision copy scores as
    fp32 does (``export.check_precision``), as export (fp16) and quantize (int8) take them."""
    sp.add_argument("--split", default="PublicTest", help=f"split of {data_option} to compare on")
    sp.add_argument(
        "--method",
        default="center",
        choices=["center", "eval1", "eval2"],
        help=f"test views for the {precision} check",
    )
    sp.add_argument(
        "--tolerance",
        type=NON_NEGATIVE,
        default=tolerance,
        help=f"accuracy points {precision} may differ from fp32 by",
    )


def _data_file_args(sp: argparse.ArgumentParser) -> None:
    """--data, --skip-bad and --resize, as every command that reads a FER-2013 file takes them."""
    sp.add_argument("--data", required=True, help=DATA_HELP)
    sp.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave bad rows out and report them, instead of stopping",
    )
    sp.add_argument(
        "--resize", action="store_true", help="image folders: resize images that are not 48x48"
    )


def command_names() -> list[str]:
    """Every ``ferkit`` command, in the order ``--help`` lists them."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ferkit`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from .checkpoint import ModelFileError
    from .data import DataError
    from .images import ImageError
    from .run_folder import CheckpointError
    from .train import TrainingDiverged

    try:
        return args.func(args)
    except (
        DataError,
        ModelFileError,
        CheckpointError,
        TrainingDiverged,
        ImageError,
        OSError,
    ) as e:
        print(f"ferkit: error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except ValueError as e:  # impossible settings: unknown network, loss, split, ...
        print(f"ferkit {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ferkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
