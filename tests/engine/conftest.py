"""Engine fixtures: the tiny random model (fp32, so results are exact), a prepared sample portrait, test clips."""

from __future__ import annotations

import pytest

from .clips import face_clip, faceless_clip


@pytest.fixture(scope="session")
def engine(tiny_checkpoint):
    from mmfa_studio.engine import Engine

    eng = Engine.load(tiny_checkpoint, device="cpu", precision="fp32")
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def prepared(engine, sample_portrait):
    return engine.prepare_source(sample_portrait)


@pytest.fixture(scope="session")
def ntsc_clip(tmp_path_factory, sample_portrait):
    """12 frames at 30000/1001 with an audio track."""
    return face_clip(tmp_path_factory.mktemp("clips") / "ntsc.mp4", sample_portrait)


@pytest.fixture(scope="session")
def no_face_clip(tmp_path_factory):
    return faceless_clip(tmp_path_factory.mktemp("clips") / "noface.mp4")
