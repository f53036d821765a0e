"""Issue 19, items 3, 5, 6 and 8: bad numbers, bombs, deep JSON, project files, quiet truncation, disk full."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import refusal, run_cli


def timed(capsys, *argv) -> tuple[int, str, float]:
    start = time.perf_counter()
    code, _, err = run_cli(capsys, *argv)
    return code, err, time.perf_counter() - start


@pytest.mark.parametrize("last_time", ["1e12", "1e308", "3600.5"])
def test_animate_caps_a_duration_taken_from_the_last_keyframe(capsys, tmp_path, sample_portrait, last_time,
                                                              garbage_checkpoint):
    keys = tmp_path / "keys.json"
    keys.write_text(f'{{"keyframes": [{{"time": 0, "motion": {{}}}}, {{"time": {last_time}, "motion": {{}}}}]}}')
    code, err, seconds = timed(capsys, "animate", sample_portrait, keys, "-o", tmp_path / "o.mp4",
                               "--checkpoint", garbage_checkpoint)
    assert code == 2 and "is out of range [0, 3600] seconds" in refusal(err) and seconds < 5


@pytest.mark.parametrize("argv, message", [
    (["render", "{photo}", "-o", "{tmp}/o.png", "--expression-prior", "99999999999999999999"],
     r"--expression-prior 99999999999999999999 is out of range \[0, 4294967295\]"),
    (["crop", "{photo}", "-o", "{tmp}/o.png", "--scale", "nan"], "--scale nan is not a finite number"),
    (["crop", "{photo}", "-o", "{tmp}/o.png", "--size", "100000"], r"--size 100000 is out of range \[16, 4096\]"),
    (["render", "{photo}", "-o", "{tmp}/o.png", "--yaw", "inf"], "--yaw inf is not a finite number"),
    (["reenact", "{photo}", "{photo}", "-o", "{tmp}/o.mp4", "--max-frames", "1e3"], "is not an integer"),
])
def test_bad_numbers_are_one_line_exit_2(capsys, tmp_path, sample_portrait, argv, message, garbage_checkpoint):
    import re

    argv = [a.format(photo=sample_portrait, tmp=tmp_path) for a in argv] + ["--checkpoint", garbage_checkpoint]
    if argv[0] == "crop":
        argv = argv[:-2]
    code, err, seconds = timed(capsys, *argv)
    assert code == 2 and re.search(message, refusal(err)) and seconds < 5, err
    assert not (tmp_path / "o.png").exists()


def test_a_seed_too_large_in_an_expression_spec(capsys, tmp_path, sample_portrait, tiny_checkpoint):
    code, err, _ = timed(capsys, "render", sample_portrait, "-o", tmp_path / "o.png", "--expression",
                         "prior:99999999999999999999", "--checkpoint", tiny_checkpoint)
    assert code == 2 and "needs an integer seed in [0, 4294967295]" in refusal(err)


def test_a_deeply_nested_keyframe_file_is_refused(capsys, tmp_path, sample_portrait, garbage_checkpoint):
    keys = tmp_path / "deep.json"
    keys.write_text("[" * 100_000 + "]" * 100_000)
    code, err, seconds = timed(capsys, "animate", sample_portrait, keys, "-o", tmp_path / "o.mp4",
                               "--checkpoint", garbage_checkpoint)
    assert code == 2 and "nested too deeply" in refusal(err) and seconds < 5


def test_a_decompression_bomb_is_refused_before_its_pixels_are_decoded(capsys, tmp_path):
    from PIL import Image

    from mmfa_studio.face import ImageError, load_image

    bomb = tmp_path / "bomb.png"
    Image.new("1", (12_000, 12_000)).save(bomb)  # 144 megapixels in a few kilobytes
    assert bomb.stat().st_size < 100_000
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(ImageError, match="144 megapixels, over the limit of 100"):
        load_image(bomb)
    code, err, _ = timed(capsys, "crop", bomb, "-o", tmp_path / "o.png")
    assert code == 2 and "over the limit" in refusal(err)
    assert time.perf_counter() - start < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 200_000  # kB: no 144 MP decode
    header_only = tmp_path / "huge.png"  # 30000×30000 declared; Pillow reads the size, nothing more
    header_only.write_bytes(_png_header(30_000, 30_000))
    with pytest.raises(ImageError, match="megapixels"):
        load_image(header_only)


def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
            + chunk(b"IEND", b""))


# -- project files and keyframe files: one schema ------------------------------------------------------------

def _project(**parts) -> str:
    from mmfa_studio.app.project import FORMAT

    return json.dumps({"format": FORMAT, **parts})


@pytest.mark.parametrize("content, message", [
    (_project(source={"path": "a\u0000b.png"}), "source.path is not a usable file path"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    (_project(settings={"paste_back": "no"}), "settings.paste_back must be true or false"),
    (_project(settings={"paste_back": 1}), "settings.paste_back must be true or false"),
    (_project(keyframes=[{"time": 1, "motion": {}}, {"time": 1, "motion": {"yaw": 3}}]), "repeats keyframe 0"),
    (_project(keyframes=[{"time": 2, "motion": {}}, {"time": 1, "motion": {}}]), "comes before keyframe 0"),
    (_project(keyframes={"time": 1}), "keyframes must be a list"),
    (_project(keyframes=[{"time": "1", "motion": {}}]), "time must be a number"),
    (_project(source=[]), "source must be an object"),
    (_project(source={"face_index": 10**30}), "face_index must be an integer"),
    (_project(settings={"fps": 10**400}), "settings.fps must be a number"),
    (_project(current={"yaw": True}), "yaw must be a number"),
    ('{"format": "mmfa-studio-project/1", "settings": {"fps": NaN}}', "NaN is not a JSON number"),
    (b"\xff\xfe not utf-8", "not UTF-8"),
])
def test_bad_projects_raise_only_project_error_in_one_line(tmp_path, content, message):
    from mmfa_studio.app.project import ProjectError, load_project
    from mmfa_studio.motion import Motion

    path = tmp_path / "bad.mmfa.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ProjectError, match=message) as info:
        load_project(path, Motion, latent_dim=4)
    assert "\n" not in str(info.value)


def test_duplicate_keyframe_times_are_refused_by_animate_too(capsys, tmp_path, sample_portrait, garbage_checkpoint):
    keys = tmp_path / "keys.json"
    keys.write_text('[{"time": 1, "motion": {}}, {"time": 1, "motion": {"yaw": 3}}]')
    code, err, _ = timed(capsys, "animate", sample_portrait, keys, "-o", tmp_path / "o.mp4",
                         "--checkpoint", garbage_checkpoint)
    assert code == 2 and "repeats keyframe 0" in refusal(err)


def test_a_good_project_round_trips(tmp_path):
    from mmfa_studio.app.project import (
        Project,
        ProjectSettings,
        load_project,
        save_project,
    )
    from mmfa_studio.motion import Motion

    photo = tmp_path / "p.png"
    photo.write_bytes(b"")
    project = Project(str(photo), 1, [(0.0, Motion()), (1.5, Motion(yaw=10, expression=(0.1, 0, 0, 0)))],
                      ProjectSettings(fps=30, duration=2, paste_back=True), Motion(pitch=3))
    save_project(tmp_path / "a.mmfa.json", project)
    loaded = load_project(tmp_path / "a.mmfa.json", Motion, latent_dim=4)
    assert loaded == project


# -- quiet truncation and disk full ------------------------------------------------------------------------

def test_a_driver_that_decodes_partly_says_so(capfd, tmp_path, tiny_checkpoint, sample_portrait):
    from engine.clips import face_clip, ffmpeg

    clip = face_clip(tmp_path / "clip.mp4", sample_portrait, frames=40, audio=False, size=96)
    ffmpeg("-i", str(clip), "-c", "copy", "-movflags", "+faststart", str(tmp_path / "fast.mp4"))  # index first
    data = (tmp_path / "fast.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])  # a download that broke off
    code = __import__("mmfa_studio.cli", fromlist=["main"]).main(
        ["reenact", str(sample_portrait), str(cut), "-o", str(tmp_path / "o.mp4"), "--checkpoint",
         str(tiny_checkpoint), "--quiet"])
    err = capfd.readouterr().err
    assert code == 0
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "decoded only" in warnings[0] and "of its 40 frames" in warnings[0], err
    assert not [line for line in err.splitlines() if line.startswith("[")], err  # no raw ffmpeg lines


def test_the_real_truncated_driver_is_reported(shared_data, capfd):
    from mmfa_studio.engine import open_frame_source

    with open_frame_source(shared_data / "videos" / "eamm__sad.mp4") as frames:
        n = sum(1 for _ in frames)
        note = frames.shortfall_note()
    assert note and f"decoded only {n} of its" in note
    assert "partial file" not in capfd.readouterr().err


def test_a_full_disk_stops_the_export_at_the_start_and_while_writing(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from mmfa_studio.engine import VideoError, VideoExporter
    from mmfa_studio.engine import video as video_module

    usage = namedtuple("usage", "total used free")
    free = {"bytes": 1 * 2**20}
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(1, 1, free["bytes"]))
    frame = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(VideoError, match="the disk is full"), VideoExporter(tmp_path / "o.mp4", 25) as video:
        video.write(frame)
    free["bytes"] = 2**40
    written = 0
    with pytest.raises(VideoError, match="the disk is full"), VideoExporter(tmp_path / "o.mp4", 25) as video:
        for i in range(1000):
            if i == 30:
                free["bytes"] = 0  # the disk fills up mid-export
            video.write(frame)
            written += 1
    assert written < 30 + video_module.CHECK_SPACE_EVERY + 1  # noticed within a few frames, not at the end
    assert list(Path(tmp_path).iterdir()) == []
