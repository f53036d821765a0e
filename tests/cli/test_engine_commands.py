"""render / animate / reenact / interpolate, run in-process through the real entry point."""

import json
from fractions import Fraction

import numpy as np
import pytest

from engine.clips import count_frames
from mmfa_studio.cli import main
from mmfa_studio.engine import probe_video


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    """The command's own error line (native libraries may log other lines to stderr)."""
    lines = [line for line in err.splitlines() if line.startswith("mmfa-studio ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_help_lists_the_options(capsys):
    for command, option in [("render", "--expression-from"), ("animate", "keyframes"), ("reenact", "--transfer"),
                            ("interpolate", "--mode")]:
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0 and option in capsys.readouterr().out


def test_render_writes_the_image_and_a_json_summary(capsys, tmp_path, tiny_checkpoint, sample_portrait):
    out = tmp_path / "edit.png"
    code, stdout, _ = run(capsys, "render", sample_portrait, "-o", out, "--yaw", "15", "--pitch", "-5",
                          "--expression-prior", "3", "--expression-strength", "0.5", "--checkpoint", tiny_checkpoint,
                          "--precision", "fp32", "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["output"] == str(out) and (summary["width"], summary["height"]) == (512, 512)  # --output-size
    assert summary["motion"]["yaw"] == 15 and summary["motion"]["expression_strength"] == 0.5
    import cv2

    assert cv2.imread(str(out)).shape == (512, 512, 3) and summary["output_size"] == 512
    fast = tmp_path / "fast.png"  # the model's own size: the fast path
    code, stdout, _ = run(capsys, "render", sample_portrait, "-o", fast, "--output-size", "64",
                          "--checkpoint", tiny_checkpoint, "--json")
    assert code == 0 and cv2.imread(str(fast)).shape == (64, 64, 3)
    code, _, err = run(capsys, "render", sample_portrait, "-o", tmp_path / "bad.png", "--output-size", "100",
                       "--checkpoint", tiny_checkpoint)
    assert code == 2 and "output size must be a multiple of 8" in error_line(err)
    full = tmp_path / "full.jpg"
    code, stdout, _ = run(capsys, "render", sample_portrait, "-o", full, "--paste-back",
                          "--checkpoint", tiny_checkpoint, "--expression=0.1,-0.2,0.3,0")
    assert code == 0 and "wrote" in stdout and cv2.imread(str(full)).shape == (512, 512, 3)


def test_render_expression_from_a_photo(capsys, tmp_path, tiny_checkpoint, sample_portrait):
    code, stdout, _ = run(capsys, "render", sample_portrait, "-o", tmp_path / "e.png", "--expression-from",
                          sample_portrait, "--checkpoint", tiny_checkpoint, "--precision", "fp32", "--json")
    summary = json.loads(stdout)
    assert code == 0 and np.allclose(summary["motion"]["expression"], summary["source_expression"], atol=1e-5)


@pytest.mark.parametrize("case", ["missing", "not_image", "no_face", "out_of_range", "bad_z", "bad_suffix",
                                  "no_folder", "output_is_folder", "missing_checkpoint", "missing_expression_photo"])
def test_render_bad_input_exits_2_with_one_line(capsys, tmp_path, tiny_checkpoint, sample_portrait, case):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    gray = tmp_path / "gray.png"
    import cv2

    cv2.imwrite(str(gray), np.full((100, 100, 3), 128, np.uint8))
    out = tmp_path / "out.png"
    ck = ["--checkpoint", tiny_checkpoint]
    argv, message = {
        "missing": (["render", tmp_path / "none.png", "-o", out, *ck], "does not exist"),
        "not_image": (["render", text, "-o", out, *ck], "not an image"),
        "no_face": (["render", gray, "-o", out, *ck], "no face found"),
        "out_of_range": (["render", sample_portrait, "-o", out, "--yaw", "300", *ck],
                         r"yaw = 300 is out of range \[-90, 90\]"),
        "bad_z": (["render", sample_portrait, "-o", out, "--expression=1,zz", *ck], "is not a number"),
        "bad_suffix": (["render", sample_portrait, "-o", tmp_path / "out.txt", *ck], "must end in"),
        "no_folder": (["render", sample_portrait, "-o", tmp_path / "nope" / "out.png", *ck],
                      "folder .* does not exist"),
        "output_is_folder": (["render", sample_portrait, "-o", tmp_path / "dir.png", *ck], "is a folder"),
        "missing_checkpoint": (["render", sample_portrait, "-o", out, "--checkpoint", tmp_path / "no.safetensors"],
                               "does not exist"),
        "missing_expression_photo": (["render", sample_portrait, "-o", out,
                                      "--expression-from", tmp_path / "x.jpg", *ck],
                                     "does not exist"),
    }[case]
    (tmp_path / "dir.png").mkdir()
    code, _, err = run(capsys, *argv)
    line = error_line(err)
    assert code == 2, err
    import re

    assert re.search(message, line), line
    assert not out.exists()


def test_animate_keyframes_to_video(capsys, tmp_path, tiny_checkpoint, sample_portrait):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"fps": 10, "keyframes": [{"time": 0, "motion": {}},
                                                         {"time": 0.5, "motion": {"yaw": 20}},
                                                         {"time": 0.9, "motion": {"yaw": -10, "roll": 5}}]}))
    out = tmp_path / "anim.mp4"
    code, stdout, _ = run(capsys, "animate", sample_portrait, keys, "-o", out, "--checkpoint", tiny_checkpoint,
                          "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["frames"] == 10 and count_frames(out) == 10 and probe_video(out).fps == 10
    keys.write_text(json.dumps([{"time": 0}, {"time": 1, "motion": {"pitch": 95}}]))
    code, _, err = run(capsys, "animate", sample_portrait, keys, "-o", tmp_path / "bad.mp4",
                       "--checkpoint", tiny_checkpoint)
    assert code == 2 and "keyframe 1 (time 1 s): pitch = 95" in error_line(err)
    assert not (tmp_path / "bad.mp4").exists()


def test_reenact_keeps_ntsc_rate_frame_count_and_audio(capsys, tmp_path, tiny_checkpoint, sample_portrait,
                                                       cli_ntsc_clip):
    out = tmp_path / "re.mp4"
    code, stdout, _ = run(capsys, "reenact", sample_portrait, cli_ntsc_clip, "-o", out, "--paste-back",
                          "--checkpoint", tiny_checkpoint, "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["fps_exact"] == "30000/1001" and summary["audio"] and summary["frames"] == 8
    info = probe_video(out)
    assert info.fps == Fraction(30000, 1001) and info.has_audio and (info.width, info.height) == (512, 512)
    assert count_frames(out) == 8
    out2 = tmp_path / "abs.mp4"
    code, stdout, _ = run(capsys, "reenact", sample_portrait, cli_ntsc_clip, "-o", out2, "--absolute",
                          "--transfer", "pose", "--no-audio", "--smoothing", "0", "--max-frames", "3",
                          "--checkpoint", tiny_checkpoint)
    assert code == 0 and count_frames(out2) == 3 and not probe_video(out2).has_audio
    assert not summary["hold_position"]
    code, stdout, _ = run(capsys, "reenact", sample_portrait, cli_ntsc_clip, "-o", tmp_path / "held.mp4",
                          "--hold-position", "--max-frames", "2", "--checkpoint", tiny_checkpoint, "--json")
    assert code == 0 and json.loads(stdout)["hold_position"] and count_frames(tmp_path / "held.mp4") == 2


def test_reenact_bad_driving_inputs(capsys, tmp_path, tiny_checkpoint, sample_portrait, cli_no_face_clip):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    out = tmp_path / "out.mp4"
    for driving, message in [(cli_no_face_clip, "no face found in any frame"),
                             (empty, "not a readable video|no video frames"),
                             (tmp_path / "none.mp4", "does not exist")]:
        code, _, err = run(capsys, "reenact", sample_portrait, driving, "-o", out, "--checkpoint", tiny_checkpoint)
        import re

        assert code == 2 and re.search(message, error_line(err)), err
        assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["empty.mp4"]
    code, _, err = run(capsys, "reenact", sample_portrait, cli_no_face_clip, "-o", out, "--smoothing", "4",
                       "--checkpoint", tiny_checkpoint)
    assert code == 2 and "--smoothing 4 is out of range" in error_line(err)
    code, _, err = run(capsys, "reenact", sample_portrait, cli_no_face_clip, "-o", out, "--absolute",
                       "--reference-frame", "3", "--checkpoint", tiny_checkpoint)
    assert code == 2 and "relative mode only" in error_line(err)


def test_interpolate_between_expressions(capsys, tmp_path, tiny_checkpoint, sample_portrait):
    out = tmp_path / "morph.mp4"
    code, stdout, _ = run(capsys, "interpolate", sample_portrait, "--from", "source", "--to", "prior:4",
                          "--frames", "5", "--mode", "slerp", "--fps", "12", "-o", out, "--checkpoint", tiny_checkpoint,
                          "--precision", "fp32", "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["frames"] == 5 and count_frames(out) == 5 and probe_video(out).fps == 12
    code, stdout, _ = run(capsys, "interpolate", sample_portrait, "--from", sample_portrait, "--to=-1,0.5,0,2",
                          "--frames", "3", "-o", tmp_path / "m2.mp4", "--checkpoint", tiny_checkpoint, "--json")
    assert code == 0 and json.loads(stdout)["to"] == [-1, 0.5, 0, 2]
    for argv, message in [(["--from", "source", "--to", "1,2", "--frames", "3"], "--to has 2 values"),
                          (["--from", "source", "--to", "source", "--frames", "1"], "--frames 1 is out of range"),
                          (["--from", "prior:x", "--to", "source", "--frames", "3"], "integer seed")]:
        code, _, err = run(capsys, "interpolate", sample_portrait, *argv, "-o", tmp_path / "bad.mp4",
                           "--checkpoint", tiny_checkpoint)
        assert code == 2 and message in error_line(err), err
    assert not (tmp_path / "bad.mp4").exists()


@pytest.mark.data
def test_reenact_a_real_ntsc_clip_with_audio(capsys, tmp_path, tiny_checkpoint, shared_data):
    driving = shared_data / "videos" / "v-express__RD_Radio10_0_clip_0.mp4"  # 29.97 fps, AAC audio, 512 px
    portraits = sorted((shared_data / "portraits").glob("*.jpg"))
    if not driving.is_file() or not portraits:
        pytest.skip("the 29.97 fps clip or the portraits are not in ../shared/data")
    out = tmp_path / "real.mp4"
    code, stdout, err = run(capsys, "reenact", portraits[0], driving, "-o", out, "--max-frames", "15",
                            "--checkpoint", tiny_checkpoint, "--json")
    if code == 2 and "no face found in" in err and str(portraits[0]) in err:
        pytest.skip(f"{portraits[0].name} has no detectable face")
    assert code == 0, err
    info = probe_video(out)
    assert info.fps == Fraction(30000, 1001) and info.has_audio and count_frames(out) == 15
    assert json.loads(stdout)["frames_without_face"] == 0


@pytest.mark.parametrize("failure", ["checkpoint", "source"])
def test_reenact_closes_the_driving_reader_when_it_fails_early(capsys, tmp_path, monkeypatch, tiny_checkpoint,
                                                                sample_portrait, cli_ntsc_clip, failure):
    import mmfa_studio.engine as engine_api

    opened = []
    real_open = engine_api.open_frame_source

    def recording_open(*args, **kwargs):
        opened.append(real_open(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(engine_api, "open_frame_source", recording_open)
    blank = tmp_path / "blank.png"
    blank.write_bytes(__import__("cv2").imencode(".png", np.full((96, 96, 3), 200, np.uint8))[1].tobytes())
    checkpoint = tmp_path / "missing.safetensors" if failure == "checkpoint" else tiny_checkpoint
    source = sample_portrait if failure == "checkpoint" else blank  # no face in a blank photo
    code, _, err = run(capsys, "reenact", source, cli_ntsc_clip, "-o", tmp_path / "out.mp4", "--checkpoint", checkpoint)
    assert code == 2 and ("does not exist" if failure == "checkpoint" else "no face") in error_line(err)
    assert len(opened) == 1 and opened[0]._closed and not opened[0]._cap.isOpened()
