"""Shared test set-up: headless Qt, the shared data folder, small models."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any QApplication exists

import pytest

from mmfa_studio.assets import SAMPLE_PORTRAIT, SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real faces); tests that need it are skipped where it is absent."""
    if not (SHARED_DATA / "videos").is_dir():
        pytest.skip(f"real face data not found at {SHARED_DATA} (set MMFA_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_portrait() -> Path:
    return SAMPLE_PORTRAIT


@pytest.fixture(scope="session")
def tiny_config():
    from mmfa_studio.model import load_model_config

    return load_model_config("tiny")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_config) -> Path:
    """A randomly initialised tiny model saved as a checkpoint (seeded, so runs are reproducible)."""
    import torch

    from mmfa_studio.checkpoint import save_model
    from mmfa_studio.model import MMFA

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_model(path, MMFA(tiny_config), {"note": "random tiny model for tests"})
    return path
