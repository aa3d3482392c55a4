"""Shared fixtures: tiny synthetic FER-2013 files, an isolated cache, the real data when present."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synth import tiny_config, write_csv  # noqa: E402

REAL_FER = (
    Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fer2013" / "fer2013-dev.csv.gz"
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache folder, so no test sees another's parsed data."""
    monkeypatch.setenv("FERKIT_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def small_csv(tmp_path_factory) -> Path:
    """700 Training + 70 PublicTest + 70 PrivateTest synthetic faces in Kaggle's layout."""
    d = tmp_path_factory.mktemp("data")
    return write_csv(d / "fer2013.csv", {"Training": 700, "PublicTest": 70, "PrivateTest": 70})


@pytest.fixture(scope="session")
def real_fer() -> Path:
    if not REAL_FER.exists():
        pytest.skip(f"real FER-2013 development file not present ({REAL_FER})")
    return REAL_FER


@pytest.fixture(scope="session")
def tiny_run(small_csv, tmp_path_factory) -> Path:
    """A one-epoch BKStart run on the synthetic data (a real model file, quickly)."""
    from ferkit.training.loop import train

    out = tmp_path_factory.mktemp("run") / "bkstart"
    train(tiny_config(small_csv, out, epochs=1, lr=0.0005, val_split=None, threads=2))
    return out
