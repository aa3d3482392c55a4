"""Knowledge distillation (issue 36's lever): the loss, the teacher file `ferkit teach`
writes, and `train --distill` following its teacher."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cli_run import run_cli
from synth import tiny_config

from ferkit.data.dataset import DataError
from ferkit.data.fer2013 import load_fer2013
from ferkit.labels import LABELS
from ferkit.losses import distillation_loss, distilled, l2_svm_loss
from ferkit.training.teacher import read_teacher_file


def test_the_distillation_loss_is_zero_at_the_teacher_and_pulls_towards_it():
    teacher = torch.tensor([[0.7, 0.1, 0.05, 0.05, 0.05, 0.03, 0.02]])
    for t in (1.0, 2.0, 4.0):
        at_teacher = teacher.log()  # scores whose softmax is the teacher, at any temperature
        assert distillation_loss(at_teacher, teacher, t).abs() < 1e-6
        scores = torch.zeros(1, 7, requires_grad=True)
        distillation_loss(scores, teacher, t).backward()
        softened = (teacher.log() / t).softmax(-1)
        # each score moves towards the softened teacher: up where it says more than 1/7
        assert torch.equal(scores.grad.sign(), (1 / 7 - softened).sign())
        assert scores.grad[0, 0] < 0
    # scaled scores: an SVM student whose scores are the teacher's over its temperature tau
    tau = 0.36
    hinge_scale = teacher.log() * tau
    assert distillation_loss(hinge_scale, teacher, 2.0, scale=1 / tau).abs() < 1e-6
    assert distillation_loss(hinge_scale, teacher, 2.0) > 0.1  # unscaled, it is pulled up
    mixed = distilled(l2_svm_loss, 0.25, 2.0)
    s, y = torch.randn(4, 7), torch.tensor([0, 1, 2, 3])
    q = torch.softmax(torch.randn(4, 7), -1)
    want = 0.75 * l2_svm_loss(s, y) + 0.25 * distillation_loss(s, q, 2.0)
    assert torch.allclose(mixed(s, y, q), want)
    scaled = distilled(l2_svm_loss, 0.25, 2.0, scale=3.0)
    want = 0.75 * l2_svm_loss(s, y) + 0.25 * distillation_loss(s * 3.0, q, 2.0)
    assert torch.allclose(scaled(s, y, q), want)


def _teacher(tiny_run, small_csv, tmp_path) -> str:
    out = tmp_path / "teacher.npz"
    r = run_cli(
        "teach", "--model", str(tiny_run), "--data", str(small_csv), "--out", str(out),
        "--method", "center", "--quiet",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "700 Training faces" in r.stdout
    return str(out)


def test_teach_writes_the_teachers_probabilities_for_every_training_face(
    tiny_run, small_csv, tmp_path
):
    path = _teacher(tiny_run, small_csv, tmp_path)
    training = load_fer2013(small_csv).split("Training")
    probs = read_teacher_file(path, training)
    assert probs.shape == (700, 7) and np.allclose(probs.sum(1), 1, atol=1e-4)
    from ferkit import Recognizer

    model = Recognizer(tiny_run).model
    want = model.probabilities(model.score(training.images[:5], "center")).numpy()
    assert np.allclose(probs[:5], want, atol=2e-2)  # (teach computes in bf16 where it can)
    with pytest.raises(DataError, match="other Training faces"):
        read_teacher_file(path, training.sample(699))
    r = run_cli("teach", "--model", str(tiny_run), "--data", str(small_csv), "--out", path)
    assert r.returncode == 2 and "--overwrite" in r.stderr  # an existing file is kept


def test_a_student_follows_its_teacher(small_csv, tmp_path):
    """A teacher that calls every face happy, at full weight: the student learns to as well;
    the run records the teacher file, and a resume with another one is refused."""
    from ferkit.training.loop import train

    training = load_fer2013(small_csv).split("Training")
    happy = np.full((len(training), 7), 0.01 / 6, np.float32)
    happy[:, LABELS.index("happy")] = 0.99
    teacher = tmp_path / "happy.npz"
    np.savez(
        teacher,
        probabilities=happy,
        fingerprint=np.array(training.fingerprint()),
        format=np.array("ferkit-teacher/1"),
    )
    out = tmp_path / "student"
    cfg = tiny_config(
        small_csv, out, epochs=2, distill=str(teacher), distill_weight=1.0, loss="ce", lr=0.005
    )
    result = train(cfg)
    from ferkit import Recognizer

    model = Recognizer(out).model
    test = load_fer2013(small_csv).split("PublicTest")
    predicted = model.score(test.images, "center").argmax(1).numpy()
    assert (predicted == LABELS.index("happy")).mean() > 0.9
    settings = model.meta.config
    assert settings["distill"] == str(teacher) and settings["distill_weight"] == 1.0
    from ferkit.export.workflows import build_card, training_procedure

    card = build_card(model, "fp32", None, None)  # the card says how it was made
    assert card["training"]["distill_weight"] == 1.0
    assert "--distill-weight 1.0" in training_procedure(settings)
    assert result is not None
    other = tmp_path / "other.npz"
    np.savez(other, **{k: v for k, v in np.load(teacher).items()}, extra=np.zeros(1))
    with pytest.raises(DataError, match="teacher file"):
        cfg = tiny_config(
            small_csv, out, epochs=3, distill=str(other), distill_weight=1.0, loss="ce"
        )
        train(cfg, resume=True)
