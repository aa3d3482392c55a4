"""ONNX export and the ONNX Runtime backend: parity with torch for every network in the
registry, the metadata round trip, bad files, and the commands with --backend onnx."""

import json

import numpy as np
import pytest
import torch
from cli_run import run_cli
from synth import synth_faces

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import ferkit  # noqa: E402
from ferkit.data.preprocess import Normalizer  # noqa: E402
from ferkit.fermodel.files import ModelFileError  # noqa: E402
from ferkit.fermodel.model import FerModel, ModelMeta  # noqa: E402
from ferkit.fermodel.onnx import (  # noqa: E402
    MAX_SCORE_DIFFERENCE,
    check_parity,
    load_onnx,
    load_with_backend,
    save_onnx,
)
from ferkit.models import create_model, list_models  # noqa: E402


def _model(arch: str, loss: str = "svm") -> FerModel:
    torch.manual_seed(0)
    faces = synth_faces(64, 3)[0]
    card = {"note": "a test model"}
    return FerModel(
        create_model(arch), Normalizer.fit(faces), ModelMeta(arch, loss, card=card)
    ).eval()


@pytest.mark.parametrize("arch", list_models())
def test_every_network_exports_with_parity(arch, tmp_path):
    model = _model(arch)
    path = tmp_path / f"{arch}.onnx"
    save_onnx(model, path)
    onnx = load_onnx(path)
    faces = synth_faces(20, 5)[0]
    for method in ("center", "eval1"):
        parity = check_parity(model, onnx, faces, "synthetic", method)
        assert parity.n == 20 and parity.same_predictions == 1.0, (method, parity)
        assert parity.max_score_difference <= MAX_SCORE_DIFFERENCE, (method, parity)
        assert parity.ok


def test_the_file_describes_itself(tmp_path):
    model = _model("bkstart", "ce")
    path = tmp_path / "m.onnx"
    save_onnx(model, path)
    back = load_onnx(path)
    assert back.backend == "onnx" and back.meta.arch == "bkstart" and back.meta.loss == "ce"
    assert back.meta.labels == ferkit.LABELS and back.meta.card == {"note": "a test model"}
    assert torch.equal(back.norm_mean, model.norm_mean) and torch.equal(
        back.norm_std, model.norm_std
    )
    # any ONNX runtime can read the interface: one input of N x 1 x 42 x 42, seven scores out
    import onnx

    proto = onnx.load(str(path))
    (inp,) = proto.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert inp.name == "faces" and dims == ["batch", 1, 42, 42]
    props = {p.key for p in proto.metadata_props}
    assert {"format", "arch", "loss", "labels", "norm.mean", "norm.std", "card"} <= props


def test_bad_onnx_files_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(ModelFileError, match="junk.onnx: not an ONNX model"):
        load_onnx(junk)
    import onnx

    foreign = tmp_path / "foreign.onnx"
    model = _model("bkvgg8")
    save_onnx(model, foreign)
    proto = onnx.load(str(foreign))
    del proto.metadata_props[:]
    onnx.save(proto, str(foreign))
    with pytest.raises(ModelFileError, match="not a ferkit model"):
        load_onnx(foreign)
    crafted = tmp_path / "crafted.onnx"
    save_onnx(model, crafted)
    proto = onnx.load(str(crafted))
    for p in proto.metadata_props:
        if p.key == "labels":
            p.value = json.dumps(["a", "b"])
    onnx.save(proto, str(crafted))
    with pytest.raises(ModelFileError, match="labels must be 7 names"):
        load_onnx(crafted)
    with pytest.raises(ModelFileError, match="run it with --backend onnx"):
        load_with_backend(crafted, backend="torch")


def test_export_and_backend_commands(tiny_run, small_csv, tmp_path):
    out = tmp_path / "tiny.onnx"
    r = run_cli(
        "export", "--model", str(tiny_run), "--out", str(out), "--format", "onnx",
        "--verify-data", str(small_csv),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "100.00 % identical predictions" in r.stderr and out.is_file()
    card = load_onnx(out).meta.card
    assert card["onnx_check"]["same_predictions"] == 1.0 and card["model"] == "bkstart + svm"

    base = ["evaluate", "--data", str(small_csv), "--method", "eval1", "--json"]
    # torch in fp32 as ONNX Runtime is: on a bf16 CPU auto's autocast moves scores by ~2e-3
    torch_eval = json.loads(run_cli(*base, "--model", str(tiny_run), "--precision", "fp32").stdout)
    for model in (str(out), str(tiny_run)):  # the file, and a model converted on load
        onnx_eval = json.loads(run_cli(*base, "--model", model, "--backend", "onnx").stdout)
        for a, b in zip(torch_eval["results"], onnx_eval["results"], strict=True):
            assert a["confusion"] == b["confusion"], model
    assert onnx_eval["model"]["params"] == torch_eval["model"]["params"]

    faces = synth_faces(3, 1)[0]
    rec_t = ferkit.Recognizer(tiny_run, precision="fp32")
    rec_o = ferkit.Recognizer(out, backend="onnx")
    for face in faces:
        a = rec_t.predict(face, detect=False)[0]
        b = rec_o.predict(face, detect=False)[0]
        assert a.label == b.label
        assert np.allclose(list(a.scores.values()), list(b.scores.values()), atol=1e-3)


@pytest.mark.parametrize("loss", ["svm", "ce"])
def test_the_faces_graph_is_all_of_inference_in_one_file(loss, tmp_path):
    """48x48 uint8 faces in, Eval1's averaged scores and calibrated probabilities out, with
    nothing but onnxruntime: equal to ferkit's own (temperature and a blank face included)."""
    import onnxruntime as ort

    model = _model("bkstart", loss)
    model.meta.temperature = 0.5
    path = tmp_path / "faces.onnx"
    save_onnx(model, path, onnx_input="faces")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map["onnx_input"] == "faces"
    faces = np.concatenate([synth_faces(9, 5)[0], np.full((1, 48, 48), 128, np.uint8)])
    scores, probs = session.run(["scores", "probabilities"], {"faces": faces})
    expected = model.score(faces, "eval1")
    assert np.abs(scores - expected.numpy()).max() <= MAX_SCORE_DIFFERENCE
    assert np.abs(probs - model.probabilities(expected).numpy()).max() <= 1e-4
    assert np.isfinite(scores[-1]).all()  # a blank face stays finite, as in ferkit
    with pytest.raises(ModelFileError, match="a faces graph"):
        load_onnx(path)  # --backend onnx runs the crops graph only


def test_export_command_writes_the_faces_graph_after_its_parity_check(
    tiny_run, small_csv, tmp_path
):
    out = tmp_path / "faces.onnx"
    r = run_cli(
        "export", "--model", str(tiny_run), "--out", str(out), "--format", "onnx",
        "--onnx-input", "faces", "--verify-data", str(small_csv),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "(eval1, 70 faces)" in r.stderr and "100.00 % identical predictions" in r.stderr
