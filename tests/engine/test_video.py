import contextlib
from fractions import Fraction

import numpy as np
import pytest

from mmfa_studio.engine import (
    ExportCancelled,
    SyntheticSource,
    VideoError,
    VideoExporter,
    exact_fps,
    open_frame_source,
    probe_video,
)

from .clips import count_frames, ffmpeg


def frames(n, w=98, h=66):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_exact_fps():
    assert exact_fps(30000 / 1001) == Fraction(30000, 1001)
    assert exact_fps(24000 / 1001) == Fraction(24000, 1001)
    assert exact_fps(25.0) == 25 and exact_fps(23.976) == Fraction(2997, 125)


def test_round_trip_keeps_count_size_and_ntsc_rate(tmp_path):
    out = tmp_path / "out.mp4"
    with VideoExporter(out, Fraction(30000, 1001)) as video:
        for f in frames(9):
            video.write(f)
    info = probe_video(out)
    assert info.fps == Fraction(30000, 1001)
    assert (info.width, info.height) == (98, 66)  # not a multiple of 16: kept, not rescaled
    assert count_frames(out) == 9 and not info.has_audio
    assert leftovers(tmp_path) == ["out.mp4"]  # no temporary file left


def test_odd_sizes_are_padded_by_one_pixel_not_rescaled(tmp_path):
    out = tmp_path / "odd.mp4"
    with VideoExporter(out, 25) as video:
        for f in frames(3, w=97, h=65):
            video.write(f)
    info = probe_video(out)
    assert (info.width, info.height) == (98, 66)
    decoded = next(iter(open_frame_source(out)))
    original = frames(1, w=97, h=65)[0]
    # the top-left content survives in place (lossy codec: compare coarse means)
    assert abs(decoded[:64, :96].mean() - original[:64, :96].mean()) < 3


def test_audio_is_muxed_and_cut_to_the_video(tmp_path, ntsc_clip):
    out = tmp_path / "with_audio.mp4"
    with VideoExporter(out, Fraction(30000, 1001), audio_from=ntsc_clip) as video:
        for f in frames(6):
            video.write(f)
    info = probe_video(out)
    assert info.has_audio and count_frames(out) == 6 and info.fps == Fraction(30000, 1001)
    # audio shorter than the video: padded, every frame kept (the clip's audio lasts 12 frames)
    longer = tmp_path / "longer.mp4"
    with VideoExporter(longer, Fraction(30000, 1001), audio_from=ntsc_clip) as video:
        for f in frames(40):
            video.write(f)
    assert count_frames(longer) == 40 and probe_video(longer).has_audio
    # a source without audio gives a silent video, not an error
    silent = tmp_path / "silent_src.mp4"
    with VideoExporter(silent, 25) as video:
        video.write(frames(1)[0])
    out2 = tmp_path / "no_audio.mp4"
    with VideoExporter(out2, 25, audio_from=silent) as video:
        video.write(frames(1)[0])
    assert not probe_video(out2).has_audio


def test_cancel_exception_interrupt_and_empty_leave_no_file(tmp_path):
    target = tmp_path / "x.mp4"
    with VideoExporter(target, 25) as video:
        video.write(frames(1)[0])
        video.cancel()
        with pytest.raises(ExportCancelled):
            video.write(frames(1)[0])
    assert video.cancelled and leftovers(tmp_path) == []
    with pytest.raises(RuntimeError, match="boom"):
        with VideoExporter(target, 25) as video:
            video.write(frames(1)[0])
            raise RuntimeError("boom")
    assert leftovers(tmp_path) == []
    with pytest.raises(KeyboardInterrupt):
        with VideoExporter(target, 25) as video:
            video.write(frames(1)[0])
            raise KeyboardInterrupt
    assert leftovers(tmp_path) == []
    with pytest.raises(VideoError, match="no frames"):
        with VideoExporter(target, 25):
            pass
    assert leftovers(tmp_path) == []


def test_failed_export_keeps_an_existing_file_untouched(tmp_path):
    target = tmp_path / "keep.mp4"
    target.write_bytes(b"old")
    with pytest.raises(ValueError, match="the video is 98×66"):
        with VideoExporter(target, 25) as video:
            video.write(frames(1)[0])
            video.write(frames(1, w=50, h=50)[0])
    assert target.read_bytes() == b"old" and leftovers(tmp_path) == ["keep.mp4"]


def test_exporter_refuses_bad_arguments(tmp_path):
    with pytest.raises(VideoError, match="must end in"):
        VideoExporter(tmp_path / "x.gif", 25)
    with pytest.raises(VideoError, match="out of range"):
        VideoExporter(tmp_path / "x.mp4", 1000)
    with pytest.raises(VideoError, match="does not exist"):
        VideoExporter(tmp_path / "x.mp4", 25, audio_from=tmp_path / "nope.wav")
    with pytest.raises(VideoError, match="cannot write"):
        with VideoExporter(tmp_path / "missing_dir" / "x.mp4", 25):
            pass


def test_video_source_fps_count_and_loop(ntsc_clip):
    with open_frame_source(ntsc_clip) as src:
        assert src.fps_fraction == Fraction(30000, 1001)
        got = list(src)
    assert len(got) == 12 and got[0].dtype == np.uint8 and got[0].shape == (192, 192, 3)
    looped = []
    with open_frame_source(str(ntsc_clip), loop=True) as src:
        for frame in src:
            looped.append(frame)
            if len(looped) == 30:
                break
    assert len(looped) == 30 and np.array_equal(looped[12], got[0])


def test_paced_source_drops_frames_for_a_slow_consumer(ntsc_clip):
    import time

    seen = 0
    with open_frame_source(ntsc_clip, pace=True) as src:
        for _ in src:
            seen += 1
            time.sleep(3 / 30)  # three frame periods per frame: a camera would drop frames
    assert 1 <= seen < 12


def test_folder_and_synthetic_sources(tmp_path):
    import cv2

    for i, f in enumerate(frames(3)):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), f[..., ::-1])
    (tmp_path / "notes.txt").write_text("not a frame")
    with open_frame_source(tmp_path, fps=12) as src:
        got = list(src)
        assert src.fps == 12 and src.frame_count == 3
    assert [np.array_equal(a, b) for a, b in zip(got, frames(3))] == [True] * 3
    a, b = SyntheticSource(duration=0.2), SyntheticSource(duration=0.2)
    fa, fb = list(a), list(b)
    assert len(fa) == 6 and all(np.array_equal(x, y) for x, y in zip(fa, fb))
    assert not np.array_equal(fa[0], fa[-1])  # it moves


def test_bad_frame_sources(tmp_path, no_face_clip):
    with pytest.raises(VideoError, match="no such video file"):
        open_frame_source(tmp_path / "missing.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match="not a readable video|no video frames"):
        open_frame_source(empty)
    text = tmp_path / "text.mp4"
    text.write_text("hello, I am not a video\n" * 50)
    with pytest.raises(VideoError):
        open_frame_source(text)
    folder = tmp_path / "nothing"
    folder.mkdir()
    with pytest.raises(VideoError, match="holds no images"):
        open_frame_source(folder)
    with pytest.raises(VideoError, match="camera 57 cannot be opened"):
        open_frame_source("57")
    audio_only = tmp_path / "audio.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300", "-t", "0.3", str(audio_only))
    with pytest.raises(VideoError):
        probe_video(audio_only)
    assert probe_video(no_face_clip).fps == 25


def test_a_failed_or_cancelled_export_leaves_no_pipe_or_log_open(tmp_path):
    for end in ("error", "cancel", "ffmpeg died"):
        with contextlib.suppress(RuntimeError, VideoError):
            with VideoExporter(tmp_path / "x.mp4", 25) as video:
                video.write(frames(1)[0])
                if end == "error":
                    raise RuntimeError("boom")
                if end == "cancel":
                    video.cancel()
                else:
                    video._process.kill()  # noqa: SLF001 - ffmpeg crashing on its own
                    video._process.wait()  # noqa: SLF001
                    for frame in frames(50):  # fills the pipe buffer, then hits the dead pipe
                        video.write(frame)
        assert video._log.closed and video._process.stdin.closed, end  # noqa: SLF001
        assert video._process.poll() is not None and leftovers(tmp_path) == []  # noqa: SLF001
