"""``prepare``: real clips → crops + index; resume; shot changes; frame folders; corrupt/truncated/faceless input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmfa_studio.cli import main
from mmfa_studio.train.prepare import PrepareOptions, prepare_dataset
from mmfa_studio.train.prepared import load_index, read_frames

pytestmark = pytest.mark.data
CLIP_A = "dreamtalk__W011_front_happy_level3_001.mp4"  # 256 px, one face
CLIP_B = "liveportrait__d0.mp4"  # 512 px, one face
TRUNCATED = "eamm__sad.mp4"  # truncated upstream: ~110 of 157 frames decode
OPTS = PrepareOptions(size=64, max_frames_per_clip=24, min_frames=6)


def _frames(path: Path, n: int, start: int = 0) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    for i in range(start + n):
        ok, frame = cap.read()
        if not ok:
            break
        if i >= start:
            out.append(frame)
    cap.release()
    return out


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(cv2.resize(f, (w, h)))
    writer.release()
    return path


@pytest.fixture(scope="module")
def videos(shared_data, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("raw")
    for name in (CLIP_A, CLIP_B):
        src = shared_data / "videos" / name
        if not src.is_file():
            pytest.skip(f"{src} missing")
        os.symlink(src, folder / name)
    return folder


@pytest.fixture(scope="module")
def prepared(videos, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("prepared")
    summary = prepare_dataset(videos, out, OPTS, progress=False)
    return out, summary


def test_real_clips_prepared(prepared):
    out, summary = prepared
    assert (summary.sources, summary.prepared, summary.failed, summary.no_face) == (2, 2, 0, 0)
    index = load_index(out)
    assert index.size == 64 and len(index.clips) == 2 == summary.clips
    for clip in index.clips:
        assert 18 <= clip.frames <= 24
        assert clip.fps == pytest.approx(25.0, abs=5)
        assert clip.pose.shape == (clip.frames, 3) and np.isfinite(clip.pose).all()
        assert np.abs(clip.pose).max() < 60
        # the head's placement in crop pixels: near the crop's centre, eyes ~⅓ of the crop apart
        assert clip.placement.shape == (clip.frames, 3) and np.isfinite(clip.placement).all()
        assert np.abs(clip.placement[:, 1:] - 31.5).max() < 12 and 10 < clip.placement[:, 0].min() < 40
        frames = read_frames(index, clip, [0, clip.frames - 1, 3])
        assert frames.shape == (3, 64, 64, 3) and frames.dtype == np.uint8
        np.testing.assert_array_equal(read_frames(index, clip, [3])[0], frames[2])  # random access = same frame
    assert summary.bytes < 24 * 2 * 64 * 64  # compact: well under 1 byte per pixel


def test_crops_are_face_centred(prepared):
    from mmfa_studio.face import create_tracker

    out, _ = prepared
    index = load_index(out)
    tracker = create_tracker(max_faces=1)
    try:
        for clip in index.clips:
            frame = read_frames(index, clip, [clip.frames // 2])[0]
            big = cv2.resize(frame, (256, 256), interpolation=cv2.INTER_CUBIC)
            faces = tracker.detect(big)
            assert faces, clip.id
            assert np.abs(faces[0].centre - 128).max() < 40
            assert 100 < faces[0].size < 230
    finally:
        tracker.close()


def test_resume_skips_finished_clips(prepared, videos):
    out, _ = prepared
    files = sorted((out / "clips").glob("*.frames"))
    stamps = [f.stat().st_mtime_ns for f in files]
    summary = prepare_dataset(videos, out, OPTS, progress=False)
    assert summary.resumed == 2 and summary.clips == 2
    assert [f.stat().st_mtime_ns for f in files] == stamps
    with pytest.raises(ValueError, match="other options"):
        prepare_dataset(videos, out, PrepareOptions(size=128, max_frames_per_clip=24), progress=False)


def test_bad_and_hard_sources(shared_data, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "corrupt.mp4").write_bytes(os.urandom(5000))
    good = shared_data / "videos" / CLIP_A
    cut = raw / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # moov atom lost: undecodable
    truncated = shared_data / "videos" / TRUNCATED
    if truncated.is_file():
        os.symlink(truncated, raw / TRUNCATED)
    rng = np.random.default_rng(0)
    _write_video(raw / "noface.mp4", [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(12)])
    # a shot change: 15 frames of one person, then 15 of another
    shots = _frames(good, 15) + [cv2.resize(f, (256, 256)) for f in _frames(shared_data / "videos" / CLIP_B, 15)]
    _write_video(raw / "two_shots.mp4", shots)
    # VoxCeleb-style folder of frames
    utt = raw / "id00001" / "vid1" / "00001"
    utt.mkdir(parents=True)
    for i, f in enumerate(_frames(good, 10, start=30)):
        cv2.imwrite(str(utt / f"{i:07d}.jpg"), f)
    out = tmp_path / "out"
    summary = prepare_dataset(raw, out, PrepareOptions(size=64, min_frames=6), progress=False)
    problems = "\n".join(summary.problems)
    assert "corrupt.mp4" in problems and "cut.mp4" in problems and "noface.mp4" in problems
    if truncated.is_file():
        assert "truncated" in problems
    index = load_index(out)
    by_source = {}
    for clip in index.clips:
        by_source.setdefault(clip.source, []).append(clip)
    assert len(by_source["two_shots.mp4"]) == 2  # split at the cut
    assert [c.frames for c in by_source["two_shots.mp4"]] == [15, 15]
    assert by_source["id00001/vid1/00001"][0].frames == 10
    assert "noface.mp4" not in by_source and "corrupt.mp4" not in by_source


def test_load_index_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_index(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="index.json"):
        load_index(tmp_path)
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid index"):
        load_index(tmp_path)
    (tmp_path / "index.json").write_text(json.dumps({"format": "mmfa-prepared", "version": 1, "size": 64, "clips": []}))
    with pytest.raises(ValueError, match="no clips"):
        load_index(tmp_path)


def test_cli(videos, tmp_path, capsys):
    assert main(["prepare", str(tmp_path / "missing"), str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["prepare", str(videos), str(tmp_path / "o"), "--stride", "0"]) == 2
    out = tmp_path / "o2"
    assert main(["prepare", str(videos / CLIP_A), str(out), "--size", "64", "--max-frames-per-clip", "12",
                 "--stride", "2", "--no-progress", "--landmarks"]) == 0
    text = capsys.readouterr().out
    assert "1 prepared" in text and "wrote" in text and "tracked the landmarks of 1 clips" in text
    assert len(list((out / "landmarks").glob("*.npz"))) == 1
    clip = load_index(out).clips[0]
    assert clip.frames == 12 and clip.stride == 2


def test_landmarks_are_tracked_on_every_crop_and_give_real_mouth_movement(prepared, tmp_path, capsys):
    """``prepare --landmarks``: one file per clip, a face on (nearly) every crop; a second run tracks nothing."""
    from mmfa_studio.face import nonrigid_motion
    from mmfa_studio.train.landmarks import load_clip_landmarks, track_landmarks

    out, _ = prepared
    index = load_index(out)
    assert track_landmarks(index, progress=False) == len(index.clips)
    assert track_landmarks(index, progress=False) == 0  # resumable: every clip already has its file
    for clip in index.clips:
        tracked = load_clip_landmarks(out, clip.id)
        assert tracked.points.shape == (clip.frames, 478, 2) and tracked.found.mean() > 0.9
        face = tracked.face(int(np.argmax(tracked.found)))
        assert 0 <= face.landmarks.min() and face.landmarks.max() < index.size
        moves = [nonrigid_motion(tracked.face(0), tracked.face(i)) for i in range(1, clip.frames)
                 if tracked.found[0] and tracked.found[i]]
        moves = [m for m in moves if m is not None]
        assert moves and all(m.shape == (478, 2) for m in moves)
        assert np.abs(nonrigid_motion(face, face)).max() < 1e-6  # a frame against itself has not moved
    assert load_clip_landmarks(out, "no-such-clip") is None
    # A file of another format (stop 15's first one kept a 3D copy instead of depth) or for another clip length
    # is a one-line error when read, and is tracked anew.
    clip = index.clips[0]
    path = out / "landmarks" / f"{clip.id}.npz"
    np.savez(path.with_suffix(".tmp.npz"), points=np.zeros((clip.frames, 478, 2)))
    path.with_suffix(".tmp.npz").replace(path)
    with pytest.raises(ValueError, match="run `mmfa-studio prepare` with --landmarks again"):
        load_clip_landmarks(out, clip.id)
    assert track_landmarks(index, progress=False) == 1
    assert load_clip_landmarks(out, clip.id, clip.frames).points.shape == (clip.frames, 478, 2)
    with pytest.raises(ValueError, match="frames of landmarks for a clip of"):
        load_clip_landmarks(out, clip.id, clip.frames + 1)
