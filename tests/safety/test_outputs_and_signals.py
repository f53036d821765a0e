"""Issue 19, items 1 and 2: no command overwrites its own input; a killed export leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import refusal, run_cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def photo(tmp_path, sample_portrait) -> Path:
    path = tmp_path / "a.jpg"
    path.write_bytes(sample_portrait.read_bytes())
    return path


@pytest.mark.parametrize("case", ["same", "relative", "symlink", "hardlink", "expression_from", "interpolate_to",
                                  "animate_keyframes", "crop_video", "reenact_driving", "checkpoint"])
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(capsys, tmp_path, photo, monkeypatch, case):
    from engine.clips import face_clip

    monkeypatch.chdir(tmp_path)
    other = tmp_path / "b.jpg"
    other.write_bytes(photo.read_bytes())
    video = tmp_path / "v.mp4"
    if case in ("crop_video", "reenact_driving"):
        face_clip(video, photo, frames=2, audio=False)
    keys = tmp_path / "k.mp4"
    keys.write_text('{"keyframes": [{"time": 0}]}')
    ckpt = tmp_path / "m.png"
    ckpt.write_bytes(b"x")
    if case == "symlink":
        (tmp_path / "link.jpg").symlink_to(photo)
    if case == "hardlink":
        os.link(photo, tmp_path / "hard.jpg")
    argv, victim = {
        "same": (["render", photo, "-o", photo], photo),
        "relative": (["render", photo, "-o", "./sub/../a.jpg"], photo),
        "symlink": (["render", photo, "-o", "link.jpg"], photo),
        "hardlink": (["render", "hard.jpg", "-o", photo], photo),
        "expression_from": (["render", photo, "-o", other, "--expression-from", other], other),
        "interpolate_to": (["interpolate", photo, "--from", "source", "--to", "v.mp4", "--frames", "3", "-o", "v.mp4"],
                           None),
        "animate_keyframes": (["animate", photo, keys, "-o", keys], keys),
        "crop_video": (["crop", video, "-o", video], video),
        "reenact_driving": (["reenact", photo, "v.mp4", "-o", video], video),
        "checkpoint": (["render", photo, "-o", ckpt, "--checkpoint", ckpt], ckpt),
    }[case]
    if case == "relative":
        (tmp_path / "sub").mkdir()
    if case == "interpolate_to":
        video.write_bytes(b"not really a video")
        victim = video
    before = victim.read_bytes()
    code, _, err = run_cli(capsys, *argv)
    line = refusal(err)
    assert code == 2 and "it would be overwritten" in line, line
    assert victim.read_bytes() == before


def test_an_output_beside_the_input_is_fine(capsys, tmp_path, photo):
    from mmfa_studio.cli import check_outputs_are_not_inputs, same_file

    assert same_file(photo, tmp_path / "." / photo.name) and not same_file(photo, tmp_path / "new.jpg")
    import argparse

    check_outputs_are_not_inputs(argparse.Namespace(output=str(tmp_path / "new.jpg"), source=str(photo),
                                                    writes=("output",), reads={"source": "source photo"}))


@pytest.fixture()
def interrupt_as_at_a_terminal():
    """SIGINT raising KeyboardInterrupt: a test run started in the background inherits SIGINT ignored, and Python
    then installs no handler for it."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_mid_export_unwinds_and_leaves_no_part_file(tmp_path, signum, interrupt_as_at_a_terminal):
    from mmfa_studio.atomic import Terminated, unwind_on_signals
    from mmfa_studio.engine import VideoExporter

    out = tmp_path / "out.mp4"
    with pytest.raises((Terminated, KeyboardInterrupt)), unwind_on_signals(), VideoExporter(out, 25) as video:
        for i in range(200):
            video.write(np.full((64, 64, 3), i, np.uint8))
            if i == 5:
                assert list(tmp_path.glob(".out.mp4.*.part.mp4"))  # the export is under way
                os.kill(os.getpid(), signum)
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


def test_sigterm_to_a_running_animate_leaves_nothing(tmp_path, tiny_checkpoint, sample_portrait):
    """End to end: the real command in its own process, killed while it writes."""
    keys = tmp_path / "keys.json"
    keys.write_text('{"fps": 25, "keyframes": [{"time": 0, "motion": {}}, {"time": 600, "motion": {"yaw": 20}}]}')
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "mmfa_studio", "animate", str(sample_portrait), str(keys), "-o",
                             str(out_dir / "o.mp4"), "--checkpoint", str(tiny_checkpoint), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out_dir.glob(".o.mp4.*.part.mp4")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        time.sleep(0.5)  # frames are being written
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert list(out_dir.iterdir()) == []


def test_stale_part_files_of_a_killed_writer_are_removed_and_nothing_else(tmp_path):
    from mmfa_studio.atomic import STALE_AFTER_S, write_bytes_atomic

    old = time.time() - STALE_AFTER_S - 10
    stale = tmp_path / ".out.png.ab_d1234.part.png"  # SIGKILLed writer: our exact pattern, unlocked, old
    fresh = tmp_path / ".out.png.zzzzzzzz.part.png"  # a writer that may still be starting
    foreign = [tmp_path / ".out.png.toolong12.part.png.bak", tmp_path / ".other.png.abcdefgh.part.png",
               tmp_path / "out.png.abcdefgh.part.png"]
    for p in (stale, fresh, *foreign):
        p.write_bytes(b"debris")
    for p in (stale, *foreign):
        os.utime(p, (old, old))
    write_bytes_atomic(tmp_path / "out.png", b"new")
    names = {p.name for p in tmp_path.iterdir()}
    assert stale.name not in names
    assert {fresh.name, "out.png", *(p.name for p in foreign)} <= names


def test_a_part_file_locked_by_a_live_writer_is_kept(tmp_path):
    import fcntl

    from mmfa_studio.atomic import STALE_AFTER_S, write_bytes_atomic

    live = tmp_path / ".out.png.abcdefgh.part.png"
    live.write_bytes(b"being written")
    old = time.time() - STALE_AFTER_S - 10
    os.utime(live, (old, old))
    with open(live, "rb") as f:  # what a live atomic_path holds for its whole write
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        write_bytes_atomic(tmp_path / "out.png", b"new")
        assert live.exists()
