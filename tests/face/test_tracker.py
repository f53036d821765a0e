"""Trackers on real photos and clips (../shared/data) and on awkward inputs made from them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mmfa_studio.face import (
    CropSmoother,
    FaceTracker,
    MediaPipeTracker,
    NoFaceError,
    create_tracker,
    crop_box,
    crop_face,
    face_alignment_available,
    load_image,
    paste_back,
    select_face,
)

pytestmark = pytest.mark.data


def test_backend_choice_and_errors():
    tracker = create_tracker("auto")
    try:
        assert isinstance(tracker, MediaPipeTracker) and isinstance(tracker, FaceTracker)
        with pytest.raises(TypeError):
            tracker.detect(np.zeros((10, 10), np.uint8))
    finally:
        tracker.close()
    tracker.close()  # closing twice (a with block around an explicit close) is harmless
    with pytest.raises(ValueError, match="unknown face tracker"):
        create_tracker("nope")


def test_no_face_gives_an_empty_list_and_a_clear_error(photo_tracker):
    rng = np.random.default_rng(0)
    for image in (np.zeros((240, 320, 3), np.uint8), rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)):
        assert photo_tracker.detect(image) == []
    with pytest.raises(NoFaceError, match="holiday.jpg"):
        select_face([], 0, where="holiday.jpg")


def test_detection_rate_on_a_sample_of_portraits(portraits_dir, photo_tracker):
    paths = sorted(p for p in portraits_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    sample = paths[::7]  # ~40 photos of every kind (the benchmark runs all of them)
    misses = [p.name for p in sample if not photo_tracker.detect(load_image(p))]
    assert len(misses) <= len(sample) * 0.05, misses


def test_several_faces_sorted_largest_first(portraits_dir, photo_tracker):
    path = portraits_dir / "3ddfa-v2__trump_hillary.jpg"
    if not path.is_file():
        pytest.skip(f"{path.name} missing")
    faces = photo_tracker.detect(load_image(path))
    assert len(faces) == 2
    assert faces[0].size >= faces[1].size
    assert abs(faces[0].centre[0] - faces[1].centre[0]) > 300  # two different people
    for f in faces:
        assert f.landmarks.shape == (478, 2) and f.landmarks_3d.shape == (478, 3) and f.pose is not None


def _placed(image: np.ndarray, canvas_hw: tuple[int, int], face_scale: float,
            at=(0.5, 0.5)) -> tuple[np.ndarray, float, tuple[int, int]]:
    """The photo resized by face_scale and pasted on a plain canvas: (canvas, scale, top-left)."""
    small = cv2.resize(image, None, fx=face_scale, fy=face_scale,
                       interpolation=cv2.INTER_AREA if face_scale < 1 else cv2.INTER_CUBIC)
    canvas = np.full((*canvas_hw, 3), 120, np.uint8)
    h, w = small.shape[:2]
    y0, x0 = int(canvas_hw[0] * at[1] - h / 2), int(canvas_hw[1] * at[0] - w / 2)
    canvas[y0:y0 + h, x0:x0 + w] = small
    return canvas, face_scale, (x0, y0)


def test_8000px_photo_detected_on_a_copy_and_pasted_back_at_full_resolution(clear_portraits, photo_tracker):
    image = clear_portraits[0]
    ref = photo_tracker.detect(image)[0]
    factor = 5000 / max(image.shape[:2])
    big, _, (x0, y0) = _placed(image, (8000, 8000), factor)
    faces = photo_tracker.detect(big)
    assert faces, "no face in the 8000×8000 photo"
    expected = (ref.centre + 0.5) * factor - 0.5 + (x0, y0)
    assert np.linalg.norm(faces[0].centre - expected) < 0.03 * faces[0].size
    assert faces[0].size == pytest.approx(ref.size * factor, rel=0.08)
    crop, t = crop_face(big, faces[0], 256)
    out = paste_back(big, crop, t)
    assert out.shape == big.shape
    cx, cy, side = t.box
    outside = np.ones(big.shape[:2], bool)
    outside[int(cy - side / 2) - 2:int(cy + side / 2) + 3, int(cx - side / 2) - 2:int(cx + side / 2) + 3] = False
    assert np.array_equal(out[outside], big[outside])  # full resolution untouched outside the crop
    # inside, the 256-px crop lands where it came from: equal at the crop's own resolution
    small_out = cv2.resize(out, (256, 256), interpolation=cv2.INTER_AREA).astype(int)
    small_big = cv2.resize(big, (256, 256), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(small_out - small_big).mean() < 1.0


def test_small_face_in_a_large_frame_is_found(clear_portraits, photo_tracker):
    image = clear_portraits[1]
    ref = photo_tracker.detect(image)[0]
    scale = 70.0 / ref.size  # a face about 70 px high in a 1280×960 frame
    canvas, _, _ = _placed(image, (960, 1280), scale, at=(0.3, 0.6))
    faces = photo_tracker.detect(canvas)
    assert faces and faces[0].size == pytest.approx(70, rel=0.25)


def test_grayscale_photo(clear_portraits, photo_tracker):
    gray = cv2.cvtColor(cv2.cvtColor(clear_portraits[2], cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    assert len(photo_tracker.detect(gray)) >= 1


def test_exif_rotated_jpeg_is_upright(clear_portraits, photo_tracker, tmp_path):
    from PIL import Image

    image = clear_portraits[0]
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 90° counter-clockwise; viewers rotate it clockwise
    Image.fromarray(np.rot90(image, 1).copy()).save(tmp_path / "r.jpg", quality=92, exif=exif.tobytes())
    loaded = load_image(tmp_path / "r.jpg")
    assert loaded.shape == image.shape
    face = photo_tracker.detect(loaded)[0]
    assert abs(face.pose.roll) < 15  # upright, not lying on its side


def test_video_tracking_and_smoothed_crop_is_steady(talking_frames):
    tracker = create_tracker(video=True, max_faces=1)
    try:
        faces = [tracker.detect(f) for f in talking_frames]
    finally:
        tracker.close()
    assert sum(bool(f) for f in faces) >= 0.98 * len(faces)
    raw = np.array([crop_box(f[0]) for f in faces if f])
    smoother = CropSmoother()
    smooth = np.array([smoother(b, i / 25.0) for i, b in enumerate(raw)])
    # jitter = frame-to-frame movement of the crop centre in 256-px crop pixels
    def jitter(boxes):
        centre = boxes[:, :2] * (256.0 / boxes[:, 2:3])
        return np.sqrt(np.mean(np.sum(np.diff(centre, axis=0) ** 2, axis=1)))

    assert jitter(smooth) < jitter(raw)
    assert jitter(smooth) < 1.5


@pytest.mark.skipif(not face_alignment_available()[0],
                    reason=f"face-alignment backend: {face_alignment_available()[1]}")
def test_face_alignment_backend(clear_portraits):
    tracker = create_tracker("face-alignment")
    try:
        faces = tracker.detect(clear_portraits[0])
    finally:
        tracker.close()
    assert faces and faces[0].landmarks.shape == (68, 2) and faces[0].pose is not None


def test_face_alignment_unavailable_is_a_clear_error():
    ok, reason = face_alignment_available()
    if ok:
        pytest.skip("face-alignment weights are installed here")
    with pytest.raises(ValueError, match="face-alignment"):
        create_tracker("face-alignment")
    assert "face-alignment" in reason


def test_silencing_stderr_from_two_threads_restores_it(tmp_path, monkeypatch):
    """Trackers started in two threads at once must not leave the real stderr pointing at /dev/null."""
    import os
    import threading
    import time

    from mmfa_studio.face import tracker as tracker_module

    log = open(tmp_path / "stderr.txt", "w")  # noqa: SIM115 - stands in for the terminal's fd 2
    monkeypatch.setattr("sys.stderr", log)
    fd = log.fileno()
    real = os.fstat(fd).st_ino

    def churn():
        for _ in range(200):
            with tracker_module._native_stderr_silenced():  # noqa: SLF001
                time.sleep(0)

    threads = [threading.Thread(target=churn) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert os.fstat(fd).st_ino == real
    finally:
        log.close()
