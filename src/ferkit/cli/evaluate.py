"""`ferkit evaluate`: accuracy with the paper's test-time views."""

from __future__ import annotations

import argparse
import json
import sys

from ..argtypes import (
    add_json_option,
    add_threads_option,
)
from ..userfiles import check_output_folder
from .options import (
    UsageError,
    data_file_args,
    load_model_args,
    model_args,
    read_data,
    report_skipped,
)

NAME = "evaluate"
HELP = "accuracy with the paper's test-time views"
DESCRIPTION = (
    "Score test splits with single centre crops, Eval1 (10 crops) or Eval2 (648 views), "
    "averaging SVM scores or CE probabilities over views. Prints accuracy per split and "
    "method; --out writes report.json, report.md (Table IX form) and confusion.png."
)


def add_arguments(sp: argparse.ArgumentParser) -> None:
    model_args(sp)
    data_file_args(sp)
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


def run(args: argparse.Namespace) -> int:
    import warnings

    from ..evaluation.evaluate import evaluate, model_identity, report_dict, write_reports
    from ..fermodel.views import METHODS

    for flag, what in (("out", "--out is a folder for the reports"), ("resume", "--resume")):
        if getattr(args, flag):  # before an hour of Eval2, not after
            check_output_folder(getattr(args, flag), what, error=UsageError)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model = load_model_args(args)
    data = read_data(args)
    report_skipped(data)
    methods = list(METHODS) if args.method == "all" else [args.method]
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda msg, *a, **k: print(
            f"ferkit: warning: {msg}", file=sys.stderr
        )
        # saved scores are reused only for these exact weights and precision
        model_id = model_identity(args.model, args.int8, args.backend) if args.resume else ""
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
                at = f"temperature {c['temperature']:.4g}" if c["temperature"] else "no temperature"
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
