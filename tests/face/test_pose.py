"""Head pose: the model's conventions (+yaw = face turned to the image right, +pitch = up, +roll = clockwise)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mmfa_studio.face import (
    Face,
    HeadPose,
    euler_from_matrix,
    head_placement,
    head_pose,
    nonrigid_motion,
    rotation_from_euler,
)
from mmfa_studio.face.pose import MESH_INDEX_OF_68, canonical_face


def test_numpy_euler_matches_the_model():
    torch = pytest.importorskip("torch")
    from mmfa_studio.model.keypoints import euler_from_matrix as torch_euler
    from mmfa_studio.model.keypoints import rotation_matrix

    rng = np.random.default_rng(0)
    angles = rng.uniform(-60, 60, (20, 3))
    mats = rotation_matrix(*(torch.tensor(angles[:, i], dtype=torch.float64) for i in range(3))).numpy()
    for a, m in zip(angles, mats):
        np.testing.assert_allclose(euler_from_matrix(m), a, atol=1e-6)
        np.testing.assert_allclose(euler_from_matrix(m), [t.item() for t in torch_euler(torch.tensor(m[None]))],
                                   atol=1e-9)
        np.testing.assert_allclose(rotation_from_euler(*a), m, atol=1e-12)


def test_canonical_face_is_in_the_model_frame():
    c = canonical_face()
    pts = c.points
    assert pts.shape == (478, 3)
    assert pts[1, 2] < pts[:468, 2].mean() - 0.2  # nose tip towards the camera (negative z)
    assert pts[10, 1] < pts[152, 1]  # forehead above the chin (y down)
    assert pts[263, 0] > 0 > pts[33, 0]  # person's left eye on the image right
    left, right = pts[c.pairs[:, 0]], pts[c.pairs[:, 1]]
    np.testing.assert_allclose(left * [-1, 1, 1], right, atol=1e-6)  # mirror symmetric
    assert len(c.pairs) > 150 and len(c.rigid) > 100


def _project(yaw: float, pitch: float, roll: float, points: np.ndarray, size: int = 512) -> np.ndarray:
    """Render the canonical shape posed by the model's rotation_matrix, 6 face widths from a pinhole camera."""
    from mmfa_studio.face.pose import _camera

    torch = pytest.importorskip("torch")
    from mmfa_studio.model.keypoints import rotation_matrix

    r = rotation_matrix(*(torch.tensor([float(a)], dtype=torch.float64) for a in (yaw, pitch, roll)))[0].numpy()
    posed = points @ r.T + np.array([0.0, 0.0, 12.0])
    image_points, _ = cv2.projectPoints(posed, np.zeros(3), np.zeros(3), _camera((size, size)), None)
    return image_points[:, 0, :]


@pytest.mark.parametrize("pose", [(20, 0, 0), (-25, 0, 0), (0, 15, 0), (0, -15, 0), (0, 0, 20), (15, -10, 12)])
def test_pose_recovers_known_rotations(pose):
    pts = canonical_face().points
    estimate = head_pose(_project(*pose, pts), (512, 512))
    np.testing.assert_allclose([estimate.yaw, estimate.pitch, estimate.roll], pose, atol=0.5)
    est68 = head_pose(_project(*pose, pts)[MESH_INDEX_OF_68], (512, 512))
    np.testing.assert_allclose([est68.yaw, est68.pitch, est68.roll], pose, atol=0.5)


def test_placement_follows_the_head_not_the_mouth_or_its_turns():
    """The rigid points' fitted scale and centroid move with the head alone: a 1.5× zoom and a shift show as
    such, while a 25° turn or an opened jaw leave the scale as it was."""
    pts = canonical_face().points
    frontal = _project(0, 0, 0, pts)
    base = head_placement(frontal, HeadPose(0, 0, 0))
    moved = head_placement(1.5 * frontal + [20.0, -10.0], HeadPose(0, 0, 0))
    assert moved.scale / base.scale == pytest.approx(1.5, rel=1e-6)
    np.testing.assert_allclose(moved.centre, 1.5 * base.centre + [20.0, -10.0], atol=1e-6)

    turned = _project(25, 0, 0, pts)
    assert head_placement(turned, HeadPose(25, 0, 0)).scale / base.scale == pytest.approx(1.0, abs=0.02)

    jaw_open = frontal.copy()
    chin = frontal[:, 1] > frontal[13, 1]  # everything below the upper lip drops by 15 px
    jaw_open[chin, 1] += 15.0
    opened = head_placement(jaw_open, HeadPose(0, 0, 0))
    assert opened.scale / base.scale == pytest.approx(1.0, abs=0.01)
    assert np.abs(opened.centre - base.centre).max() < 0.5
    assert head_placement(frontal[:100], HeadPose(0, 0, 0)) is None  # not a known landmark scheme


def _posed_face(pose: tuple[float, float, float], scale: float, centre: tuple[float, float]) -> Face:
    """The canonical face under ``pose``, zoomed and placed (an exact weak-perspective view, with depth)."""
    points = scale * canonical_face().points @ rotation_from_euler(*pose).T + [*centre, 0.0]
    return Face(box=np.zeros(4), landmarks=points[:, :2].copy(), score=1.0, pose=HeadPose(*pose), landmarks_3d=points)


def test_nonrigid_motion_is_what_moves_beyond_the_head():
    """Turned, zoomed and shifted, the canonical face has no non-rigid motion; an opened jaw has it, in units of
    the reference head's scale."""
    reference = _posed_face((5, -3, 2), 40.0, (250, 260))
    moved = _posed_face((-12, 8, -6), 48.0, (270, 240))
    assert np.abs(nonrigid_motion(reference, moved)).max() < 1e-6
    jaw = canonical_face().points[:, 1] > canonical_face().points[13, 1]  # below the upper lip
    moved.landmarks[jaw, 1] += 12.0
    motion = nonrigid_motion(reference, moved)
    np.testing.assert_allclose(motion[jaw], [[0.0, 12.0 / 40]] * int(jaw.sum()), atol=0.02)
    assert np.abs(motion[~jaw]).max() < 0.02  # (the jaw weighs a little in the rigid fit's zoom)
    assert nonrigid_motion(Face(box=np.zeros(4), landmarks=reference.landmarks, score=1.0, pose=reference.pose),
                           moved) is None  # no depth


def _rotate_clockwise(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -degrees, 1.0)  # OpenCV: positive = counter-clockwise
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


@pytest.mark.data
def test_real_photos_flip_and_rotate(clear_portraits, photo_tracker):
    for image in clear_portraits:
        pose = photo_tracker.detect(image)[0].pose
        flipped = photo_tracker.detect(np.ascontiguousarray(image[:, ::-1]))[0].pose
        assert flipped.yaw == pytest.approx(-pose.yaw, abs=3.0)
        assert flipped.roll == pytest.approx(-pose.roll, abs=3.0)
        assert flipped.pitch == pytest.approx(pose.pitch, abs=4.0)
        turned = photo_tracker.detect(_rotate_clockwise(image, 15))[0].pose
        assert turned.roll - pose.roll == pytest.approx(15.0, abs=4.0)
        assert turned.yaw == pytest.approx(pose.yaw, abs=4.0)


@pytest.mark.data
def test_yaw_sign_follows_the_nose_on_real_faces(portraits_dir, photo_tracker):
    """Independent of the canonical shape: a nose tip right of the cheeks' midpoint means the face turns right."""
    from mmfa_studio.face import load_image

    checked = 0
    for path in sorted(portraits_dir.iterdir())[:80]:
        try:
            faces = photo_tracker.detect(load_image(path))
        except Exception:  # noqa: BLE001 - unreadable files are tested elsewhere
            continue
        if not faces or faces[0].pose is None or abs(faces[0].pose.yaw) < 12 or abs(faces[0].pose.roll) > 15:
            continue
        lm = faces[0].landmarks
        nose_offset = lm[1, 0] - (lm[234, 0] + lm[454, 0]) / 2
        assert np.sign(nose_offset) == np.sign(faces[0].pose.yaw), path.name
        checked += 1
    assert checked >= 5
