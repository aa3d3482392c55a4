"""The model shipped inside the package: it loads with no path, it is what its card says, and
its card's accuracy is what ferkit measures on the real data. Skipped in a build without one."""

import json

import pytest
import torch
from cli_run import run_cli
from safetensors import safe_open

import ferkit
from ferkit.fermodel.files import shipped_model_path

SHIPPED = shipped_model_path()
pytestmark = pytest.mark.skipif(SHIPPED is None, reason="this build ships no model")


@pytest.fixture(scope="module")
def shipped():
    return ferkit.load_model()


@pytest.fixture(scope="module")
def public_test(real_fer):
    from ferkit.data.fer2013 import load_fer2013

    return load_fer2013(real_fer)


@pytest.fixture(scope="module")
def fp32_center(shipped, public_test):
    """The shipped weights' centre-crop result on the 3,589 PublicTest faces (scored once)."""
    from ferkit.evaluation.evaluate import evaluate

    return evaluate(shipped, public_test, ["PublicTest"], ["center"], progress=False)[0]


def test_loads_with_no_path_as_bkvgg12_svm(shipped):
    assert shipped.meta.arch == "bkvgg12" and shipped.meta.loss == "svm"
    assert shipped.meta.labels == tuple(ferkit.LABELS)
    with safe_open(str(SHIPPED), framework="pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys() if not k.startswith("norm.")}  # noqa: SIM118
    assert dtypes == {"F16"}


def test_card_is_complete_and_beside_the_weights(shipped):
    card = shipped.meta.card
    for key in ("command", "training", "wall_time_hours", "machine", "terms_of_use", "limits"):
        assert card.get(key), key
    assert set(card["accuracy"]["PublicTest"]) == {"center", "eval1", "eval2"}
    assert card["training"]["augment_strength"] == shipped.meta.config["augment_strength"]
    check = card["fp16_check"]
    # checked on Eval1 (10 views a face, a minute): fp16 moved nothing
    assert check["method"] == "eval1" and abs(check["fp32"] - check["fp16"]) <= 0.001
    page = SHIPPED.with_suffix(".md").read_text()
    assert "Terms of use" in page and json.dumps(card["accuracy"]) in page


def test_it_carries_the_temperature_fitted_on_its_validation_faces(shipped):
    """Calibrated probabilities need T in the file; an SVM's raw scores are far too unsure
    (mean softmax confidence ~0.32 at 63 % right), so the fitted T is well below 1."""
    t = shipped.meta.temperature
    assert t is not None and 0.1 < t < 1 and shipped.meta.card["temperature"] == t
    faces = torch.full((4, 48, 48), 128, dtype=torch.uint8)
    averaged = shipped.score(faces, "eval1")
    assert not torch.allclose(shipped.probabilities(averaged), averaged.softmax(-1))


def test_card_accuracy_is_what_ferkit_measures(shipped, fp32_center):
    """The card's fp32 centre-crop figure, re-measured on the shipped fp16 weights (3,589 faces):
    fp16 may move a few faces, so allow 0.3 point."""
    assert fp32_center.accuracy == pytest.approx(
        shipped.meta.card["accuracy"]["PublicTest"]["center"], abs=0.003
    )


def test_its_int8_calibration_ships_and_keeps_its_accuracy(public_test, fp32_center):
    """The int8 version (calibrated on Training faces) against the shipped weights, centre crops
    of PublicTest: within the half point `ferkit quantize` allows."""
    from ferkit.evaluation.evaluate import evaluate
    from ferkit.fermodel.files import load_calibration

    assert load_calibration(SHIPPED).check["method"] == "eval1"
    (int8,) = evaluate(
        ferkit.load_model(int8=True), public_test, ["PublicTest"], ["center"], progress=False
    )
    assert int8.accuracy >= fp32_center.accuracy - 0.005


def test_it_is_the_model_of_the_experiment_the_report_shows_as_shipped(shipped):
    """Table IX and Fig. 2 of REPRODUCTION.md show ``catalogue.SHIPPED``: its summary must be the
    one this file was exported with (same training command, same test figures)."""
    from pathlib import Path

    from ferkit.reproduce.catalogue import SHIPPED
    from ferkit.userfiles import public_command

    summary = json.loads((Path(__file__).parents[1] / f"reproduction/{SHIPPED}.json").read_text())
    assert public_command(shipped.meta.card["command"]) == public_command(summary["command"])
    eval2 = next(r for r in summary["results"] if r["method"] == "eval2")
    assert shipped.meta.card["accuracy"]["PublicTest"]["eval2"] == round(eval2["accuracy"], 4)


def test_commands_use_it_when_no_model_is_given(small_csv):
    r = run_cli("evaluate", "--data", str(small_csv), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["model"]["arch"] == "bkvgg12"
