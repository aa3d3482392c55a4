"""A model file is checked whole on load: crafted or damaged metadata and tensors give one
ModelFileError with the reason, never an error deep inside predict, evaluate or serve."""

import json

import pytest
import torch
from cli_run import run_cli
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import ferkit
from ferkit.fermodel.files import ModelFileError


def _crafted(tiny_run, tmp_path, meta_change=None, tensor_change=None):
    with safe_open(str(tiny_run / "model.safetensors"), "pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(tiny_run / "model.safetensors")
    meta.update(meta_change or {})
    if tensor_change:
        tensor_change(tensors)
    p = tmp_path / "crafted.safetensors"
    save_file(tensors, str(p), metadata=meta)
    return p


def _set(key, value):
    def change(t):
        t[key] = value

    return change


def _first_weight(t):
    return next(k for k in t if not k.startswith("norm."))


CASES = {
    "six labels": ({"labels": json.dumps(["a"] * 6)}, None, "labels must be 7 names"),
    "labels a string": ({"labels": json.dumps("angry")}, None, "labels must be 7 names"),
    "labels a number": ({"labels": "7"}, None, "incomplete ferkit metadata"),
    "repeated label": ({"labels": json.dumps(["happy"] * 7)}, None, "labels repeat a name"),
    "unknown loss": ({"loss": "hinge3"}, None, "unknown loss 'hinge3'"),
    "unknown network": ({"arch": "vgg99"}, None, "unknown network 'vgg99'"),
    "config a list": ({"config": "[1, 2]"}, None, "metadata 'config' is not a JSON object"),
    "3x3 mean": ({}, _set("norm.mean", torch.zeros(3, 3)), "norm.mean must be 48x48, not 3x3"),
    "zero std": ({}, _set("norm.std", torch.zeros(48, 48)), "norm.std has values <= 0"),
    "int8 weights": (
        {},
        lambda t: t.update({_first_weight(t): t[_first_weight(t)].to(torch.int8)}),
        "is int8, not a float type",
    ),
    "NaN weights": (
        {},
        lambda t: t.update({_first_weight(t): torch.full_like(t[_first_weight(t)], float("nan"))}),
        "holds NaN or infinite values",
    ),
    "wrong shape": (
        {},
        lambda t: t.update({_first_weight(t): torch.zeros(3, 3)}),
        "weights do not fit 'bkstart'",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_crafted_model_file_is_refused_with_its_reason(tiny_run, tmp_path, case):
    meta, tensors, reason = CASES[case]
    p = _crafted(tiny_run, tmp_path, meta, tensors)
    with pytest.raises(ModelFileError) as e:
        ferkit.load_model(p)
    assert str(p) in str(e.value) and reason in str(e.value)
    assert len(str(e.value).splitlines()) == 1


def test_crafted_model_is_one_line_from_the_cli(tiny_run, tmp_path):
    p = _crafted(tiny_run, tmp_path, {"labels": json.dumps(["x"] * 3)})
    r = run_cli("predict", "--model", str(p), str(tmp_path))
    assert r.returncode == 1 and "labels must be 7 names" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_the_untouched_file_still_loads(tiny_run, tmp_path):
    assert ferkit.load_model(_crafted(tiny_run, tmp_path)).meta.arch == "bkstart"
