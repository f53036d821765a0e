"""``mmfa-studio crop`` on photos, videos and bad input (exit 2 with one line, never a traceback)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mmfa_studio.cli import main
from mmfa_studio.face import load_image

pytestmark = pytest.mark.data


def test_crop_photo_json(portraits_dir, tmp_path, capsys):
    src = portraits_dir / "3ddfa-v2__trump_hillary.jpg"
    out = tmp_path / "face1.png"
    assert main(["crop", str(src), "-o", str(out), "--face", "1", "--size", "128", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["faces"]) == 2 and data["face"] == 1
    assert set(data["faces"][0]["pose"]) == {"yaw", "pitch", "roll"}
    assert 0 < data["faces"][0]["eye_open"] < 1
    crop = load_image(out)
    assert crop.shape == (128, 128, 3)
    # the crop shows face 1: its box centre (mapped through the printed matrix) is the crop centre
    x0, y0, x1, y1 = data["faces"][1]["box"]
    m = np.array(data["crop_matrix"])
    centre = m[:, :2] @ [(x0 + x1) / 2, (y0 + y1) / 2] + m[:, 2]
    assert np.allclose(centre, [63.5, 63.5 + 0.05 * 128 / 1.6], atol=2)


def test_crop_video(shared_data, tmp_path, capsys):
    src = tmp_path / "short.mp4"
    cap = cv2.VideoCapture(str(shared_data / "videos" / "eamm__happy.mp4"))
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 25, (256, 256))
    for _ in range(20):
        ok, frame = cap.read()
        writer.write(frame)
    writer.release()
    out = tmp_path / "crop.mp4"
    assert main(["crop", str(src), "-o", str(out), "--size", "96"]) == 0
    text = capsys.readouterr().out
    assert "face 0 found in 20" in text and "yaw" in text
    check = cv2.VideoCapture(str(out))
    n = 0
    while True:
        ok, frame = check.read()
        if not ok:
            break
        assert frame.shape == (96, 96, 3)
        n += 1
    assert n == 20


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\nnot really"), "not an image or corrupt"),
    (lambda p: cv2.imwrite(str(p), np.full((200, 300, 3), 90, np.uint8)), "no face found in"),
])
def test_bad_photos_exit_2_naming_the_file(tmp_path, capsys, make, message):
    src = tmp_path / "input.png"
    make(src)
    assert main(["crop", str(src), "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and "input.png" in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_bad_arguments(tmp_path, capsys, portraits_dir):
    assert main(["crop", str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "o.png")]) == 2
    src = portraits_dir / "avatarify-python__jobs.jpg"
    assert main(["crop", str(src), "-o", str(tmp_path / "o.txt")]) == 2
    assert main(["crop", str(src), "-o", str(tmp_path / "o.png"), "--face", "3"]) == 2
    assert "only 1 face" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["out.png", "out.mp4"])
def test_an_output_that_is_a_folder_exits_2_and_leaves_nothing(tmp_path, capsys, sample_portrait, name):
    from engine.clips import face_clip  # tests/engine/clips.py: a short clip of the sample portrait

    src = sample_portrait if name.endswith(".png") else face_clip(tmp_path / "clip.mp4", sample_portrait, frames=4,
                                                                  audio=False)
    out = tmp_path / name
    out.mkdir()
    assert main(["crop", str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "Traceback" not in err
    assert out.is_dir() and not any(out.iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{name}")]  # no temporary file left
