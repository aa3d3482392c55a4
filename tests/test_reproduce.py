import json

from synth import write_csv

from ferkit.cli import main
from ferkit.reproduce import EXPERIMENTS, render_report, write_report


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
        "--summaries",
        str(summaries),
        "--report",
        str(report),
    ]
    assert main(args) == 0
    s = json.loads((summaries / "bkstart-svm.json").read_text())
    assert s["budget"]["epochs"] == 1 and s["epochs_done"] == 1
    assert [(r["split"], r["method"]) for r in s["results"]] == [("PublicTest", "eval2")]
    assert "ferkit train --data" in s["command"] and s["machine"]
    text = report.read_text()
    assert "| bkvgg12 | 4,188,903 | 4.19 M |" in text
    assert "| bkstart-svm | VI/VII | eval2 | 69.7 |" in text
    assert "| bkvgg14-svm | VII | eval2 | 70.6 | not run |" in text
    # the report is a function of the committed summaries alone
    assert write_report(summaries, tmp_path / "again.md") == text
    # a second call skips what is finished
    mtime = (summaries / "bkstart-svm.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (summaries / "bkstart-svm.json").stat().st_mtime_ns == mtime
    assert (tmp_path / "out" / "fig1-augmentation.png").exists()


def test_report_lists_every_experiment_even_when_none_ran():
    text = render_report([])
    for e in EXPERIMENTS:
        assert f"| {e.name} |" in text
    assert "Not run yet." in text
