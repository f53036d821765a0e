"""Fixtures for the engine commands: test clips made with imageio-ffmpeg's ffmpeg."""

from __future__ import annotations

import pytest

from engine.clips import face_clip, faceless_clip  # tests/engine/clips.py (tests/ is on sys.path)


@pytest.fixture(scope="session")
def cli_ntsc_clip(tmp_path_factory, sample_portrait):
    return face_clip(tmp_path_factory.mktemp("cli_clips") / "ntsc.mp4", sample_portrait, frames=8)


@pytest.fixture(scope="session")
def cli_no_face_clip(tmp_path_factory):
    return faceless_clip(tmp_path_factory.mktemp("cli_clips") / "noface.mp4")
