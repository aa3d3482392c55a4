"""Several models as one (issue 36): the averaging rule, and every command that runs a model
taking several."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_run import run_cli

from ferkit.data.preprocess import Normalizer
from ferkit.fermodel.ensemble import Ensemble
from ferkit.fermodel.files import shipped_model_path
from ferkit.fermodel.model import FerModel, ModelMeta
from ferkit.fermodel.temperature import calibrated
from ferkit.models import create_model

FACES = np.random.default_rng(0).integers(0, 256, (5, 48, 48)).astype(np.uint8)


def _model(loss: str, seed: int, temperature: float | None = None) -> FerModel:
    torch.manual_seed(seed)
    norm = Normalizer(torch.full((48, 48), 120.0), torch.full((48, 48), 60.0))
    meta = ModelMeta(arch="bkstart", loss=loss, temperature=temperature)
    return FerModel(create_model("bkstart"), norm, meta).eval()


@pytest.mark.parametrize("method", ["center", "eval1"])
def test_models_with_one_loss_average_what_each_averages_over_views(method):
    a, b = _model("svm", 1, 0.5), _model("svm", 2, 1.5)
    ens = Ensemble([a, b])
    want = (a.score(FACES, method) + b.score(FACES, method)) / 2
    assert torch.allclose(ens.score(FACES, method), want, atol=1e-6)
    assert ens.loss == "svm" and ens.meta.temperature == 1.0  # the members' mean
    assert torch.allclose(ens.probabilities(want), calibrated(want, "svm", 1.0))
    assert ens.meta.arch == "bkstart+bkstart" and ens.params == a.params + b.params


def test_models_with_different_losses_average_calibrated_probabilities():
    svm, ce = _model("svm", 1, 0.5), _model("ce", 2, 2.0)
    ens = Ensemble([svm, ce])
    want = (svm.probabilities(svm.score(FACES)) + ce.probabilities(ce.score(FACES))) / 2
    got = ens.score(FACES)
    assert torch.allclose(got, want, atol=1e-6) and ens.loss == "ce"
    assert torch.allclose(ens.probabilities(got), want / want.sum(-1, keepdim=True), atol=1e-6)


def test_one_model_scores_as_itself_and_labels_must_agree():
    a = _model("svm", 1, 0.7)
    one = Ensemble([a])
    assert torch.equal(one.score(FACES, "eval1"), a.score(FACES, "eval1"))
    assert one.meta.temperature == 0.7
    other = _model("svm", 2)
    other.meta.labels = ("a", "b", "c", "d", "e", "f", "g")
    with pytest.raises(ValueError, match="labels differ"):
        Ensemble([a, other])
    with pytest.raises(ValueError, match="at least one"):
        Ensemble([])


def test_progress_counts_each_face_once():
    seen = []
    Ensemble([_model("svm", 1), _model("svm", 2)]).score(FACES, on_chunk=seen.append)
    assert sum(seen) == len(FACES)


def test_evaluate_predict_and_serve_take_several_models(tiny_run, small_csv):
    shipped = shipped_model_path()
    r = run_cli(
        "evaluate", "--model", str(tiny_run), str(shipped), "--data", str(small_csv),
        "--split", "PublicTest", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["model"]["arch"] == "bkstart+bkvgg12"
    assert report["model"]["path"] == f"{tiny_run} + {shipped}"
    from ferkit import Recognizer
    from ferkit.data.fer2013 import load_fer2013

    split = load_fer2013(small_csv).split("PublicTest")
    rec = Recognizer([tiny_run, shipped], precision="fp32")
    right = (rec.model.score(split.images).argmax(1).numpy() == split.labels).mean()
    assert report["results"][0]["accuracy"] == pytest.approx(right, abs=1 / len(split.labels))
    r = run_cli("predict", "--sample", "--model", str(tiny_run), str(shipped), "--json")
    assert r.returncode == 0, r.stderr
    face = json.loads(r.stdout.splitlines()[0])
    assert face["label"] == rec.predict(str(_sample()))[0].label
    from fastapi.testclient import TestClient

    from ferkit.serve import ServeConfig, create_app

    with TestClient(create_app(rec, ServeConfig())) as client:
        assert client.get("/v1/model").json()["arch"] == "bkstart+bkvgg12"
        answer = client.post("/v1/predict", content=_sample().read_bytes()).json()
        assert answer["faces"][0]["label"] == face["label"]


def test_evaluate_prints_an_ensembles_mean_temperature_to_four_digits(tiny_run, small_csv):
    """The members' mean temperature is a float's sum: printed as a person would write it."""
    import re

    import ferkit

    shipped = shipped_model_path()
    r = run_cli(
        "evaluate", "--model", str(tiny_run), str(shipped), "--data", str(small_csv),
        "--split", "PublicTest",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    printed = re.search(r"temperature ([^)]+)\)", r.stdout).group(1)
    temps = [ferkit.load_model(m).meta.temperature for m in (tiny_run, shipped)]
    assert printed == f"{sum(temps) / 2:.4g}" and len(printed) <= 6


def _sample():
    from ferkit.images import sample_photo

    return sample_photo()
