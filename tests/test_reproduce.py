import json

import numpy as np
import pytest
from synth import write_csv

import ferkit
from ferkit.cli.main import main
from ferkit.device import machine_description
from ferkit.labels import LABELS
from ferkit.reproduce import EXPERIMENTS, RECIPES, render_report, write_report
from ferkit.reproduce.catalogue import SHIPPED


def test_reproduce_on_tiny_runs_regenerates_the_report(tmp_path, monkeypatch):
    data = write_csv(tmp_path / "f.csv", {"Training": 600, "PublicTest": 7})
    summaries, report = tmp_path / "reproduction", tmp_path / "REPRODUCTION.md"
    args = [
        "reproduce",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "out"),
        "--epochs",
        "1",
        "--lr",
        "0.0005",
        "--experiments",
        "bkstart-ce-noaug",
        "bkstart-svm",
        "bkstart-svm-aug0.5",
        "--summaries",
        str(summaries),
        "--report",
        str(report),
    ]
    assert main(args) == 0
    s = json.loads((summaries / "bkstart-svm.json").read_text())
    assert s["budget"]["epochs"] == 1 and s["epochs_done"] == 1
    # the table's test, and the cheap ones every summary records for comparisons
    assert [(r["split"], r["method"]) for r in s["results"]] == [
        ("PublicTest", "center"),
        ("PublicTest", "eval1"),
        ("PublicTest", "eval2"),
    ]
    assert "ferkit train --data" in s["command"]
    assert s["machine"] == machine_description()  # cores, CPU model, bf16 or not, threads
    assert len(s["curve"]) == 1 and s["curve"][0][0] == 1 and 0 <= s["curve"][0][1] <= 100
    assert len(s["curve"][0]) == 4 and 0 <= s["curve"][0][3] <= 100  # training accuracy
    assert len(s["model_sha256"]) == 64  # ties the figures to the exact weights
    run = tmp_path / "out" / "runs" / "bkstart-svm"
    assert (run / "model.safetensors").exists()
    assert not (run / "eval-partial").exists()  # resumable Eval2's scores go with the summary
    text = report.read_text()
    assert "| bkvgg12 | 4,188,903 | 4.19 M |" in text
    assert "| bkstart-svm | VI/VII | eval2 | 69.7 |" in text
    assert "| bkvgg14-svm | VII | eval2 | 70.6 | not run |" in text
    assert "## Validation accuracy against epochs and hours" in text
    each = " | ".join(f"{100 * x['accuracy']:.1f}" for x in s["results"])
    assert f"| bkstart-svm | 1 | {each} |" in text  # each model on each test
    assert "- bkstart-svm, eval2: " in text and "points below the paper, after 1 epochs" in text
    assert f"| bkstart-svm | 1 | {s['curve'][0][1]:.1f} | {s['curve'][0][3]:.1f} |" in text
    # Eval2 view by view: one rotation's or one rescaling's views alone
    e2 = s["results"][2]
    assert set(e2["by_view"]) == {"side", "angle", "max_angle"} and len(e2["by_view"]["angle"]) == 9
    assert "## Eval2 view by view (PublicTest, %)" in text
    angles = " | ".join(f"{100 * a:.1f}" for a in e2["by_view"]["angle"].values())
    assert f"| bkstart-svm | {100 * e2['accuracy']:.1f} | {angles} |" in text
    assert "| experiment | eval2 | rotation -45 | rotation -33.75 |" in text
    # a recipe: the paper's experiment with one change, shown beside it, never as a paper row
    r = json.loads((summaries / "bkstart-svm-aug0.5.json").read_text())
    assert r["augment_strength"] == 0.5 and "--augment-strength 0.5" in r["command"]
    assert (
        ferkit.load_model(tmp_path / "out" / "runs" / "bkstart-svm-aug0.5").meta.config[
            "augment_strength"
        ]
        == 0.5
    )
    e2, b2 = (
        ", ".join(f"{x['method']} {100 * x['accuracy']:.1f}" for x in y["results"]) for y in (r, s)
    )
    assert (
        f"| bkstart-svm-aug0.5 | bkstart-svm | rotation +-22.5 deg, rescaling 45-51 px (half the "
        f"paper's ranges) | 1 ({r['train_seconds'] / 3600:.1f} h) | {100 * r['val_acc']:.1f} | {e2} | "
        f"1 ({s['train_seconds'] / 3600:.1f} h) | {100 * s['val_acc']:.1f} | "
        f"{b2} |" in text
    )
    assert "- bkstart-svm-aug0.5, " not in text.split("## Recipes")[0]  # no paper figure
    # the report is a function of the summaries alone: from a copy, with the runs gone
    import shutil

    copy = shutil.copytree(
        summaries, tmp_path / "elsewhere" / summaries.name, ignore=shutil.ignore_patterns("figures")
    )
    shutil.move(tmp_path / "out", tmp_path / "out-moved")
    assert write_report(copy, copy.parent / "REPRODUCTION.md") == text
    shutil.move(tmp_path / "out-moved", tmp_path / "out")
    # a second call skips what is finished
    mtime = (summaries / "bkstart-svm.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (summaries / "bkstart-svm.json").stat().st_mtime_ns == mtime
    # a summary from before the cheap tests were recorded gains them, with no retraining
    metrics = (run / "metrics.jsonl").read_text()
    old = dict(s, results=s["results"][2:], model_sha256="0" * 64)  # other weights: untouched
    (summaries / "bkstart-svm.json").write_text(json.dumps(old))
    assert main(args) == 0
    assert json.loads((summaries / "bkstart-svm.json").read_text())["results"] == old["results"]
    old["model_sha256"] = s["model_sha256"]  # these weights: the missing tests are measured
    (summaries / "bkstart-svm.json").write_text(json.dumps(old))
    assert main(args) == 0
    again = json.loads((summaries / "bkstart-svm.json").read_text())
    assert again["model_sha256"] == s["model_sha256"]
    seconds_apart = [{**x, "seconds": 0} for x in again["results"]]
    assert seconds_apart == [{**x, "seconds": 0} for x in s["results"]]
    assert (run / "metrics.jsonl").read_text() == metrics
    assert (summaries / "figures" / "fig1-augmentation.png").exists()
    assert "](reproduction/figures/fig1-augmentation.png)" in text  # as seen from the report
    assert (summaries / "figures" / "validation-curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "](reproduction/figures/validation-curves.png)" in text  # every run's curve, drawn


def test_table_ix_and_fig_2_are_pictures_too(tmp_path):
    """A BKVGG12 + SVM summary gets Table IX's confusion matrix drawn and linked."""
    from ferkit.labels import LABELS
    from ferkit.reproduce import write_figures

    data = write_csv(tmp_path / "f.csv", {"Training": 20, "PublicTest": 7})
    confusion = [[int(i == j) * 10 + 1 for j in range(7)] for i in range(7)]
    result = {
        "split": "PublicTest",
        "method": "eval2",
        "n": 119,
        "views": 648,
        "accuracy": 70 / 119,
        "per_class_accuracy": {lab: 11 / 17 for lab in LABELS},
        "confusion": confusion,
        "seconds": 1.0,
    }
    summaries = tmp_path / "reproduction"
    summaries.mkdir()
    s12 = {"experiment": SHIPPED, "results": [result], "command": "c", "curve": []}
    s12 |= {
        "epochs_done": 1,
        "train_seconds": 60.0,
        "machine": "m",
        "val_acc": 0.6,
        "best_epoch": 1,
    }
    (summaries / f"{SHIPPED}.json").write_text(json.dumps(s12))
    write_figures(str(data), tmp_path / "out", summaries)
    assert (summaries / "figures" / "table9-confusion.png").stat().st_size > 10_000
    text = render_report([s12])
    assert "](reproduction/figures/table9-confusion.png)" in text
    assert "](reproduction/figures/fig2-bkvgg12-curves.png)" in text


def test_report_lists_every_experiment_even_when_none_ran():
    text = render_report([])
    for e in EXPERIMENTS:
        assert f"| {e.name} |" in text
    assert all(r.name not in text for r in RECIPES) and "## Recipes" not in text  # only when run
    assert "Not run yet." in text


def test_shortfall_lines_say_where_validation_and_training_went():
    curve = [[e, 40.0 + e, e / 10, 50.0 + 2 * e] for e in range(1, 13)]
    result = {"split": "PublicTest", "method": "eval1", "accuracy": 0.5}
    s = {"experiment": "bkstart-ce-noaug", "augment": False, "results": [result]}
    s |= {
        "epochs_done": 12,
        "train_seconds": 4320.0,
        "curve": curve,
        "machine": "m",
        "command": "c",
    }
    text = render_report([s])
    line = next(x for x in text.splitlines() if x.startswith("- bkstart-ce-noaug, eval1:"))
    assert "11.0 points below the paper, after 12 epochs (1.2 h)" in line
    assert (
        "validation accuracy went 42.0 -> 52.0 over the last 10 epochs, best 52.0 at epoch 12"
        in line
    )
    assert "training accuracy on its batches, dropout on, ended at 74.0" in line


def test_fast_rows_short_of_the_paper_are_explained_by_their_seeds_mean_and_seed_0_run():
    curve = [[e, 40.0 + e, e / 10, 50.0 + e] for e in range(1, 26)]
    runs = [("bkstart-svm-fast", 56.0), ("bkstart-svm-fast-seed1", 57.0)]
    runs += [("bkstart-svm-fast-seed2", 58.0), ("bkstart-ce-fast", 68.7)]
    summaries = [
        _summary(name, {"eval2": acc})
        | {"train_seconds": 1800.0, "curve": curve, "command": "c", "machine": "m"}
        for name, acc in runs
    ]
    lines = render_report(summaries).splitlines()
    line = next(x for x in lines if x.startswith("- bkstart-svm (fast procedure, 3 seeds), eval2:"))
    # the mean of 56, 57 and 58 against the paper's 69.7; the why is seed 0's run
    assert "12.7 points below the paper, after 25 epochs (0.5 h)" in line
    assert "validation accuracy went 55.0 -> 65.0 over the last 10 epochs" in line
    # 68.7 against 69.2: within the point the issue allows, so not listed
    assert not any(x.startswith("- bkstart-ce (fast procedure") for x in lines)


def test_a_recipe_keeps_its_own_epochs_learning_rate_weight_decay_and_schedule(tmp_path):
    """`--epochs`/`--lr` are the paper experiments' budget; a recipe that varies one keeps it."""
    import dataclasses

    from ferkit.reproduce import Budget, experiment, run_experiment

    data = write_csv(tmp_path / "f.csv", {"Training": 300, "PublicTest": 3})
    exp = dataclasses.replace(
        experiment("bkstart-svm-e80"),
        epochs=2,
        lr=2e-3,
        weight_decay=1e-4,
        schedule="cosine",
        methods=("center",),
    )
    summaries = tmp_path / "reproduction"
    summaries.mkdir()
    s = run_experiment(exp, str(data), tmp_path / "out", summaries, Budget(epochs=1, lr=5e-4))
    assert s["budget"]["epochs"] == 2 and s["epochs_done"] == 2 and len(s["curve"]) == 2
    assert (s["budget"]["lr"], s["budget"]["weight_decay"]) == (2e-3, 1e-4)
    assert s["budget"]["schedule"] == "cosine" and "--schedule cosine" in s["command"]
    assert "--epochs 2" in s["command"] and "--lr 0.002 --weight-decay 0.0001" in s["command"]
    path = summaries / "bkstart-svm-e80.json"
    mtime = path.stat().st_mtime_ns
    again = run_experiment(exp, str(data), tmp_path / "out", summaries, Budget(epochs=1))
    assert again["epochs_done"] == 2 and again["model_sha256"] == s["model_sha256"]
    assert path.stat().st_mtime_ns == mtime  # finished: not retrained to the paper rows' budget


def test_by_view_remeasures_only_an_eval2_recorded_without_its_breakdown(tmp_path):
    import dataclasses

    import torch

    from ferkit.reproduce import Budget, experiment, run_experiment

    data = str(write_csv(tmp_path / "f.csv", {"Training": 300, "PublicTest": 3}))
    exp = dataclasses.replace(experiment("bkstart-svm"), methods=("eval2",))
    summaries = tmp_path / "reproduction"
    summaries.mkdir()
    s = run_experiment(exp, data, tmp_path / "out", summaries, Budget(epochs=1))
    for r in s["results"]:  # as a summary written before the breakdown was recorded
        r.pop("by_view", None)
    path = summaries / "bkstart-svm.json"
    path.write_text(json.dumps(s))
    plain = run_experiment(exp, data, tmp_path / "out", summaries, Budget(epochs=1))
    assert not any("by_view" in r for r in plain["results"])  # not asked: left as it is
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        again = run_experiment(
            exp, data, tmp_path / "out", summaries, Budget(epochs=3, threads=1), by_view=True
        )
        assert torch.get_num_threads() == 1  # --threads holds for evaluation alone too
    finally:
        torch.set_num_threads(threads)
    assert again["epochs_done"] == 1 and again["budget"]["epochs"] == 1  # measured, not trained on
    assert [r["method"] for r in again["results"]] == ["center", "eval1", "eval2"]
    e2 = again["results"][2]
    assert e2["accuracy"] == s["results"][2]["accuracy"] and len(e2["by_view"]["angle"]) == 9
    assert "by_view" not in again["results"][1]  # Eval1 was not re-run
    saved = json.loads(path.read_text())["results"]  # (NaN per-class cells: compare keys)
    assert [(r["method"], "by_view" in r) for r in saved] == [
        ("center", False),
        ("eval1", False),
        ("eval2", True),
    ]


def test_the_committed_report_is_what_the_committed_summaries_make():
    """REPRODUCTION.md is never edited by hand nor left behind its summaries."""
    from pathlib import Path

    from ferkit.reproduce import load_summaries

    root = Path(__file__).resolve().parents[1]
    summaries = load_summaries(root / "reproduction")
    assert summaries, "no committed summaries"
    expected = render_report(summaries, "reproduction/figures")
    assert (root / "REPRODUCTION.md").read_text() == expected


def test_report_only_redraws_the_report_from_the_summaries_and_runs_nothing(tmp_path, monkeypatch):
    """After ferkit changes, or a run on older code wrote the report: no data, no training."""
    import shutil
    from pathlib import Path

    from ferkit.cli.main import EXIT_USAGE, main

    root = Path(__file__).resolve().parents[1]
    summaries = tmp_path / "reproduction"
    shutil.copytree(root / "reproduction", summaries, ignore=shutil.ignore_patterns("figures"))
    report = tmp_path / "R.md"
    args = ["reproduce", "--summaries", str(summaries), "--report", str(report)]
    assert main(args) == EXIT_USAGE and not report.exists()  # runs need --data and --out
    import ferkit.evaluation.evaluate
    import ferkit.training.loop

    def nothing_runs(*a, **k):
        raise AssertionError("--report-only trained or evaluated something")

    monkeypatch.setattr(ferkit.training.loop, "train", nothing_runs)
    monkeypatch.setattr(ferkit.evaluation.evaluate, "evaluate", nothing_runs)
    assert main([*args, "--report-only"]) == 0
    assert report.read_text() == (root / "REPRODUCTION.md").read_text()  # the committed one
    drawn = sorted(p.name for p in (summaries / "figures").iterdir())
    assert drawn == [
        "lever-long-run.png",
        "paper-vs-ferkit.png",
        "table9-confusion.png",
        "validation-curves.png",
    ]


def _summary(name: str, accs: dict[str, float], epochs: int = 25) -> dict:
    results = [{"split": "PublicTest", "method": m, "accuracy": a / 100} for m, a in accs.items()]
    return {"experiment": name, "results": results, "epochs_done": epochs}


def test_fast_rows_take_the_seed_spread_and_the_claims_their_verdicts():
    from ferkit.reproduce.verdicts import claim_verdicts, paired_seed_spread, row_figures

    by_name = {
        s["experiment"]: s
        for s in (
            _summary("bkstart-svm", {"eval2": 57.4}, epochs=40),
            _summary("bkstart-ce", {"eval1": 52.0, "eval2": 53.0}, epochs=40),
            _summary("bkstart-svm-fast", {"eval1": 65.0, "eval2": 66.0}),
            _summary("bkstart-svm-fast-seed1", {"eval1": 65.5, "eval2": 67.0}),
            _summary("bkstart-svm-fast-seed2", {"eval1": 66.0, "eval2": 68.0}),
            _summary("bkstart-ce-fast", {"eval1": 60.0, "eval2": 65.0}),
        )
    }
    rows = {(r.experiment, r.method): r for r in row_figures(by_name)}
    svm = rows[("bkstart-svm", "eval2")]
    assert svm.fast == (66.0, 67.0, 68.0) and svm.fast_mean == 67.0 and svm.fast_sd == 1.0
    assert svm.paper == 69.7 and svm.paper_procedure == 57.4
    assert rows[("bkvgg8-svm", "eval2")].fast == ()  # not run
    # Eval2 - Eval1 of one run over the seeds: 66-65, 67-65.5, 68-66 -> 1, 1.5, 2: sd 0.5
    paired = paired_seed_spread(by_name)
    assert paired == pytest.approx(0.5)
    verdicts = {c.says: (d, v) for c, d, v in claim_verdicts(list(rows.values()), paired)}
    d, v = verdicts["the L2-SVM beats CE (BKStart)"]
    assert d == pytest.approx(0.5)
    assert v["paper's procedure"] == "+4.4: confirms (no seed spread measured)"
    # fast: 67.0 - 65.0 = +2.0, more than one seed spread but within 2 x sqrt(2) x 1.0
    assert v["fast procedure"] == "+2.0: within seed noise (+-2.8)"
    # one run's two tests: within twice the paired spread, not 2 x sqrt(2) x the runs' spread
    d, v = verdicts["Eval2 beats Eval1 (BKStart + CE)"]
    assert v["fast procedure"] == "+5.0: confirms (beyond seed noise)"
    low = claim_verdicts(list(rows.values()), paired_sd=3.0)
    v = {c.says: v for c, _, v in low}["Eval2 beats Eval1 (BKStart + CE)"]
    assert v["fast procedure"] == "+5.0: within seed noise (+-6.0)"
    assert verdicts["depth helps: BKVGG10 over BKVGG8"][1]["fast procedure"] == "not measured"


def test_paper_procedure_runs_of_different_lengths_are_not_compared():
    from ferkit.reproduce.verdicts import claim_verdicts, row_figures

    by_name = {
        s["experiment"]: s
        for s in (
            _summary("bkvgg12-svm", {"eval2": 63.3}, epochs=120),
            _summary("bkvgg14-svm", {"eval2": 44.3}, epochs=12),
        )
    }
    verdicts = {c.says: v for c, _, v in claim_verdicts(row_figures(by_name))}
    assert verdicts["BKVGG14 overfits: below BKVGG12"]["paper's procedure"] == (
        "+19.0: cannot tell (runs of 120 and 12 epochs)"
    )


def test_help_names_every_experiment_a_user_can_run():
    import argparse

    from ferkit.cli.main import build_parser
    from ferkit.reproduce.catalogue import all_experiments

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    text = sub.choices["reproduce"].description
    for e in all_experiments():
        assert f" {e.name}," in text or f" {e.name}." in text, e.name


def test_a_summary_short_of_its_tests_whose_weights_are_gone_says_so(tmp_path, capsys):
    """Kept as it is (nothing to measure) but not silently: the user is told how to re-run it."""
    import dataclasses

    from ferkit.fermodel.files import model_file
    from ferkit.reproduce import Budget, experiment, run_experiment

    data = str(write_csv(tmp_path / "f.csv", {"Training": 300, "PublicTest": 3}))
    exp = dataclasses.replace(experiment("bkstart-svm"), methods=("eval1",))
    summaries = tmp_path / "reproduction"
    summaries.mkdir()
    s = run_experiment(exp, data, tmp_path / "out", summaries, Budget(epochs=1))
    s["results"] = [r for r in s["results"] if r["method"] != "eval1"]  # as if cut short
    path = summaries / "bkstart-svm.json"
    path.write_text(json.dumps(s))
    written = path.read_text()
    weights = model_file(tmp_path / "out" / "runs" / "bkstart-svm")
    for change, why in [("retrained", "not the ones it describes"), ("gone", "no weights")]:
        capsys.readouterr()
        if change == "gone":
            weights.unlink()
        else:
            weights.write_bytes(weights.read_bytes() + b" ")
        again = run_experiment(exp, data, tmp_path / "out", summaries, Budget(epochs=1))
        err = capsys.readouterr().err
        assert "bkstart-svm" in err and "lacks eval1" in err and why in err, change
        assert "move it aside" in err
        assert path.read_text() == written  # nothing retrained or rewritten
        assert [r["method"] for r in again["results"]] == ["center"]


def test_a_proxy_arm_trains_with_its_levers_and_records_no_test(tmp_path):
    """The lever study's arms reach `ferkit train` whole, and are judged on validation alone."""
    import dataclasses

    from ferkit.reproduce import Budget, experiment, run_experiment

    data = write_csv(tmp_path / "f.csv", {"Training": 300, "PublicTest": 3})
    exp = dataclasses.replace(experiment("bkvgg12-proxy-avg-seed1"), arch="bkstart", epochs=2)
    # an arm's own batch size is what trains and what its summary records
    exp = dataclasses.replace(exp, options=(*exp.options, ("batch_size", 64)))
    summaries = tmp_path / "reproduction"
    summaries.mkdir()
    s = run_experiment(exp, str(data), tmp_path / "out", summaries, Budget(epochs=1))
    assert s["results"] == [] and s["epochs_done"] == 2 and s["table"] == "proxy"
    assert json.loads((summaries / f"{exp.name}.json").read_text()) == s
    assert s["batch_size"] == 64
    for words in (
        "--mirror alternate",
        "--ema-start 0.5",
        "--ema-bn recomputed",
        "--seed 1",
        "--batch-size 64",
    ):
        assert words in s["command"]
    config = ferkit.load_model(tmp_path / "out" / "runs" / exp.name).meta.config
    assert config["mirror"] == "alternate" and config["precision"] == "fp32"


def test_a_distilled_recipe_finds_its_teacher_file_under_out_or_says_how_to_make_it(tmp_path):
    """A teacher file is made beforehand (its teachers are models, not runs): the recipe names
    it under reproduce's --out, and a missing one stops the run before it starts."""
    from ferkit.reproduce import Budget, experiment
    from ferkit.reproduce.runner import train_config
    from ferkit.userfiles import UserPathError

    exp = experiment("bkvgg12-svm-stack-e60-ramp-distill")
    run = tmp_path / "out" / "runs" / exp.name
    with pytest.raises(UserPathError, match="ferkit teach") as e:
        train_config(exp, Budget(), "f.csv", run, quiet=True)
    assert "shipped-pair.npz" in str(e.value) and exp.name in str(e.value)
    teacher = tmp_path / "out" / "teachers" / "shipped-pair.npz"
    teacher.parent.mkdir(parents=True)
    teacher.write_bytes(b"")
    cfg = train_config(exp, Budget(), "f.csv", run, quiet=True)
    assert cfg.distill == str(teacher) and cfg.epochs == 60 and cfg.augment_ramp_from == 0.5


def test_the_lever_table_judges_each_arm_against_its_references_seed_spread():
    from ferkit.reproduce.lever_table import lever_section

    def run(arm: str, seed: int, val: float) -> dict:
        name = f"bkvgg12-proxy-{arm}-seed{seed}"
        curve = [[5, val - 5, 0.1, 40.0], [10, val, 0.2, 50.0]]
        cpu = "2-core AMD EPYC (x86_64, bf16), 1 threads (torch 2.13.0+cpu)"
        return {
            "experiment": name,
            "val_acc": val / 100,
            "train_seconds": 1800,
            "curve": curve,
            "machine": cpu
            if arm == "aug"
            else cpu.replace("AMD EPYC", "Intel(R) Xeon(R) Processor"),
        }

    runs = [run("base", 0, 60.0), run("base", 1, 61.0), run("base", 2, 62.0)]
    runs += [run("aug", 0, 65.0), run("aug", 1, 66.0), run("sgd-lr0.01", 0, 61.5)]
    runs += [run("stack", 0, 70.0), run("stack", 1, 70.5), run("stack", 2, 71.0)]
    runs += [run("stack-no-dirac", 0, 68.0), run("stack-random-mirror", 0, 70.5)]
    text = "\n".join(lever_section({r["experiment"]: r for r in runs}))
    assert "| base |" in text
    assert "| 3 | 60.0, 61.0, 62.0 | 61.0 +- 1.0 | 56.0 | 0.50 (Intel Xeon) | - |" in text
    assert (  # twice the base's standard deviation (1.0) is 2 points
        "| 2 | 65.0, 66.0 | 65.5 +- 0.7 | 60.5 | 0.50 (AMD EPYC) | +4.5 over the base: beyond "
        "its seed spread |" in text
    )
    assert (
        "| 61.5 | 56.5 | 0.50 (Intel Xeon) | +0.5 over the base: within its seed spread |" in text
    )
    # the stack's ablations against the stack (sd 0.5: 1 point), not against the base
    assert (
        "| 68.0 | 63.0 | 0.50 (Intel Xeon) | -2.5 over the stack: beyond its seed spread |" in text
    )
    assert (
        "| 70.5 | 65.5 | 0.50 (Intel Xeon) | +0.0 over the stack: within its seed spread |" in text
    )
    assert "with the CPU they ran on: 2-core AMD EPYC" in text  # each machine named in full
    assert "| init |" not in text  # not run: no row
    two = "\n".join(lever_section({r["experiment"]: r for r in runs if r is not runs[2]}))
    assert "+5.0 over the base: not judged (it needs 3 seeds)" in two  # 2 agreeing seeds say little
    assert lever_section({}) == []


def test_the_long_run_is_shown_beside_its_references(tmp_path):
    import json

    from ferkit.reproduce.catalogue import LONG_RUN, LONG_RUN_BESIDE
    from ferkit.reproduce.lever_table import LONG_RUN_FIGURE, long_run_section
    from ferkit.reproduce.pictures import write_summary_figures

    cpu = "2-core AMD EPYC (x86_64, bf16), 1 threads (torch 2.13.0+cpu)"
    long = {
        "experiment": LONG_RUN,
        "table": "recipe",
        "epochs_done": 3,
        "curve": [[1, 50.0, 0.1, 40.0], [2, 62.5, 0.2, 50.0], [3, 61.0, 0.3, 55.0]],
        "results": [  # a whole result: the long run may be the shipped one, Table IX's
            {
                "split": "PublicTest",
                "method": "eval2",
                "n": 7,
                "views": 648,
                "accuracy": 5 / 7,
                "per_class_accuracy": {label: 5 / 7 for label in LABELS},
                "confusion": (np.eye(7, dtype=int) * 5 + np.eye(7, k=1, dtype=int)).tolist(),
                "seconds": 1.0,
            }
        ],
        "machine": cpu,
    }
    paper = LONG_RUN_BESIDE[0]  # a run it is drawn beside
    ref = {
        "experiment": paper,
        "table": "VII/IX",
        "epochs_done": 2,
        "curve": [[1, 40.0, 0.5, 30.0], [2, 60.0, 1.0, 50.0]],
        "results": [{"split": "PublicTest", "method": "eval2", "n": 9, "accuracy": 0.642}],
        "machine": cpu,
    }
    text = "\n".join(long_run_section({LONG_RUN: long, paper: ref}, "figs"))
    assert "best validation 62.5 % at epoch 2 (0.20 h)" in text and "; eval2 71.4 %" in text
    assert "passes 60 % at epoch 2;" in text  # the speed target's epoch: the first at >= 60
    assert f"`{paper}`: 60.0 % at epoch 2 (1.00 h), passes 60 % at epoch 2, eval2 64.2 %" in text
    slow = {**ref, "curve": [[1, 40.0, 0.5, 30.0], [2, 59.9, 1.0, 50.0]]}
    assert "59.9 % at epoch 2 (1.00 h), never passes 60 %" in "\n".join(
        long_run_section({LONG_RUN: long, paper: slow}, "figs")
    )
    assert f"(figs/{LONG_RUN_FIGURE})" in text
    assert long_run_section({paper: ref}, "figs") == []  # before the long run: nothing
    for s in (long, ref):
        (tmp_path / f"{s['experiment']}.json").write_text(json.dumps(s))
    write_summary_figures(tmp_path)
    assert (tmp_path / "figures" / LONG_RUN_FIGURE).stat().st_size > 10_000


def test_regularisers_at_length_are_set_beside_the_run_they_change():
    from ferkit.reproduce.catalogue import LENGTH_ARMS, LENGTH_REFERENCE
    from ferkit.reproduce.lever_table import length_section

    cpu = "2-core Intel(R) Xeon(R) Processor (x86_64, bf16), 1 threads (torch 2.13.0+cpu)"
    ref = {
        "experiment": LENGTH_REFERENCE,
        "curve": [[1, 60.0, 0.5], [2, 67.2, 1.0]],
        "results": [{"split": "PublicTest", "method": "eval2", "n": 8, "accuracy": 0.625}],
        "machine": cpu,
    }
    arm = {
        "experiment": LENGTH_ARMS[0],
        "curve": [[1, 61.0, 0.5], [2, 68.0, 1.1], [3, 67.5, 1.5]],
        "results": [{"split": "PublicTest", "method": "eval1", "n": 4, "accuracy": 0.75}],
        "machine": cpu,
    }
    assert length_section({LENGTH_REFERENCE: ref}) == []  # no arm yet: nothing
    text = "\n".join(length_section({LENGTH_REFERENCE: ref, arm["experiment"]: arm}))
    row = next(line for line in text.splitlines() if line.startswith(f"| {LENGTH_ARMS[0]} |"))
    assert "| 68.0 % at epoch 2 (1.10 h) | 1 | - | 75.0 % | - | Intel Xeon | +0.8 |" in row
    assert "67.2 % at epoch 2 (1.00 h), passes 60 % at epoch 1, eval2 62.5 %, Intel Xeon" in text
    assert "erasing" in row and LENGTH_ARMS[1] not in text
