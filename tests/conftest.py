"""Shared fixtures: a small synthetic dataset, and the real CamVid folder when present."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CAMVID = Path(os.environ.get("FCNEDGE_CAMVID", REPO.parent / "shared" / "datasets" / "camvid"))


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """64 train and 16 val synthetic street scenes at 96x128, SegNet layout."""
    from fcnedge.train.synth import write_synth_dataset

    return write_synth_dataset(tmp_path_factory.mktemp("synth"), 64, 16, (96, 128), seed=1)


@pytest.fixture(scope="session")
def camvid_root() -> Path:
    if not (CAMVID / "train").is_dir():
        pytest.skip(f"CamVid not found at {CAMVID} (set FCNEDGE_CAMVID to its folder)")
    return CAMVID
