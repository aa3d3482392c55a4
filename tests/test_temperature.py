"""Calibrated probabilities: one temperature fitted on the validation faces, stored in the
model file, used for every probability, and measured by the expected calibration error."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import ferkit
from ferkit.evaluation.evaluate import evaluate, write_reports
from ferkit.fermodel.files import ModelFileError
from ferkit.fermodel.temperature import calibrated, fit_temperature, reliability


def _sampled(t_true: float, n: int = 20000, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z = 3 * torch.randn(n, 7, generator=g)
    y = torch.multinomial((z / t_true).softmax(1), 1, generator=g).squeeze(1)
    return z, y.numpy()


@pytest.mark.parametrize("t_true", [0.5, 2.5])
def test_the_fitted_temperature_is_the_one_that_made_the_labels(t_true):
    z, y = _sampled(t_true)
    assert fit_temperature(z, y, "svm") == pytest.approx(t_true, rel=0.05)


def test_temperature_changes_no_prediction_and_lowers_the_calibration_error():
    z, y = _sampled(2.5)
    t = fit_temperature(z, y, "svm")
    plain, fitted = calibrated(z, "svm", None), calibrated(z, "svm", t)
    assert torch.equal(plain.argmax(1), fitted.argmax(1))
    before, after = reliability(plain, y).ece, reliability(fitted, y).ece
    assert before > 0.1 and after < 0.02 and after < before / 5
    # CE models: the temperature applies to the log of their averaged probabilities
    p = z.softmax(1)
    assert torch.allclose(calibrated(p, "ce", None), p, atol=1e-6)


def test_training_stores_a_temperature_that_probabilities_use(tiny_run):
    model = ferkit.load_model(tiny_run)
    t = model.meta.temperature
    assert t is not None and t > 0
    scores = model.score(np.zeros((2, 48, 48), np.uint8), "eval1")
    assert torch.allclose(model.probabilities(scores), (scores / t).softmax(1))


def test_a_bad_temperature_in_a_model_file_is_refused(tiny_run, tmp_path):
    with safe_open(str(tiny_run / "model.safetensors"), "pt") as f:
        meta = dict(f.metadata())
    for bad in ("-1", "nan", "hot"):
        p = tmp_path / f"t{bad}.safetensors"
        save_file(load_file(tiny_run / "model.safetensors"), str(p), {**meta, "temperature": bad})
        with pytest.raises(ModelFileError):
            ferkit.load_model(p)


def test_evaluate_reports_the_calibration_error_and_draws_the_diagram(
    tiny_run, small_csv, tmp_path
):
    model = ferkit.load_model(tiny_run)
    data = ferkit.data.fer2013.load_fer2013(small_csv)
    (r,) = evaluate(model, data, ["PublicTest"], ["eval1"], progress=False)
    cal = r.calibration
    assert cal["temperature"] == model.meta.temperature
    assert 0 <= cal["ece"] <= 1 and 0 <= cal["ece_softmax"] <= 1
    assert sum(cal["reliability"]["bin_count"]) == r.n == 70
    from ferkit.evaluation.evaluate import report_dict

    write_reports(report_dict(model, str(tiny_run), [r]), [r], tmp_path)
    assert (tmp_path / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    row = json.loads((tmp_path / "report.json").read_text())["results"][0]
    assert row["calibration"]["ece"] == cal["ece"]
