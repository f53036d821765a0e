"""Training pairs: seeded, consistent augmentation, two frames read per sample, resumable sampling."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from mmfa_studio.train.config import Augmentation, TrainConfig, load_train_config, scaled_model_config
from mmfa_studio.train.dataset import ArrayStore, PairDataset, PreparedStore, ResumableSampler, collate_pairs

from .conftest import blob_video

NO_AUG = Augmentation(flip=0.0, brightness=0, contrast=0, saturation=0, hue=0, scale=0, shift=0)


class CountingStore(ArrayStore):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.reads: list[list[int]] = []

    def read(self, clip, frame_indices):
        self.reads.append(list(frame_indices))
        return super().read(clip, frame_indices)


def test_samples_are_seeded_and_read_only_two_frames():
    store = CountingStore({"a": blob_video(12), "b": blob_video(9, seed=3)})
    ds = PairDataset(store, 64, Augmentation(), seed=7, max_gap=3)
    s1, s2 = ds[5], ds[5]
    assert torch.equal(s1.source, s2.source) and torch.equal(s1.driving, s2.driving)
    assert all(len(r) == 2 for r in store.reads)
    assert all(abs(a - b) <= 3 for a, b in store.reads)
    other = PairDataset(store, 64, Augmentation(), seed=8, max_gap=3)[5]
    assert not torch.equal(other.source, s1.source) or not torch.equal(other.driving, s1.driving)
    assert s1.source.shape == (3, 64, 64) and s1.source.dtype == torch.uint8


def test_augmentation_is_the_same_for_source_and_driving():
    video = np.repeat(blob_video(1)[:1], 4, axis=0)  # every frame identical
    ds = PairDataset(ArrayStore({"same": video}), 64, Augmentation(flip=0.5, hue=0.05), seed=0)
    for n in range(6):
        s = ds[n]
        assert torch.equal(s.source, s.driving)


def test_flip_mirrors_the_frames_and_the_pose_labels():
    video = blob_video(2)
    pose = np.array([[10.0, 5.0, -3.0], [12.0, 4.0, -2.0]], np.float32)
    plain = PairDataset(ArrayStore({"a": video}, {"a": pose}), 64, NO_AUG, seed=0)
    flipped = PairDataset(ArrayStore({"a": video}, {"a": pose}), 64, dataclasses.replace(NO_AUG, flip=1.0), seed=0)
    a, b = plain[3], flipped[3]  # same seed and number → same frames
    assert (b.source.int() - torch.flip(a.source, dims=[-1]).int()).abs().max() <= 1
    assert torch.allclose(b.source_pose, a.source_pose * torch.tensor([-1.0, 1.0, -1.0]))
    assert bool(a.has_pose) and bool(b.has_pose)


def test_placement_labels_follow_the_frames_warp():
    """Placement labels (crop pixels) come out in normalised units, mirrored by a flip and zoomed by a resize."""
    video = blob_video(2)
    place = np.array([[20.0, 47.5, 15.5], [24.0, 31.5, 31.5]], np.float32)
    store = ArrayStore({"a": video}, placements={"a": place})
    plain = PairDataset(store, 64, NO_AUG, seed=0)
    for n in range(4):
        s = plain[n]
        both = sorted([s.source_placement.tolist(), s.driving_placement.tolist()])
        assert bool(s.has_placement)
        for got in both:
            assert got in ([20.0, 0.5, -0.5], [24.0, 0.0, 0.0])
    flipped = PairDataset(store, 32, dataclasses.replace(NO_AUG, flip=1.0), seed=0)
    a, b = plain[3], flipped[3]
    # (within the resize's half-pixel offset, which the frames' own warp has too)
    assert torch.allclose(b.source_placement, a.source_placement * torch.tensor([0.5, -1.0, 1.0]), atol=1 / 32)
    assert not bool(PairDataset(ArrayStore({"a": video}), 64, NO_AUG)[0].has_placement)


def test_missing_or_nan_pose_is_marked_unknown():
    video = blob_video(3)
    pose = np.full((3, 3), np.nan, np.float32)
    s = PairDataset(ArrayStore({"a": video}, {"a": pose}), 64, NO_AUG)[0]
    assert not bool(s.has_pose) and torch.equal(s.source_pose, torch.zeros(3))
    s = PairDataset(ArrayStore({"a": video}), 64, NO_AUG)[0]
    assert not bool(s.has_pose)


def test_resize_to_training_size():
    s = PairDataset(ArrayStore({"a": blob_video(3, size=64)}), 32, Augmentation())[1]
    assert s.source.shape == (3, 32, 32)


def test_sampler_shards_ranks_and_resumes():
    full = list(itertools.islice(ResumableSampler(0, 1), 12))
    r0 = list(itertools.islice(ResumableSampler(0, 2), 6))
    r1 = list(itertools.islice(ResumableSampler(1, 2), 6))
    assert sorted(r0 + r1) == full
    resumed = list(itertools.islice(ResumableSampler(1, 2, start=4), 2))
    assert resumed == r1[2:4]


def test_collate_stacks_fields():
    ds = PairDataset(ArrayStore({"a": blob_video(4)}), 64, Augmentation())
    batch = collate_pairs([ds[0], ds[1], ds[2]])
    assert batch.source.shape == (3, 3, 64, 64) and batch.has_pose.shape == (3,)


def test_prepared_store_reads_the_prepared_format(prepared_blobs):
    store = PreparedStore(prepared_blobs)
    assert store.size == 64 and len(store.clips) == 2
    frames = store.read(store.clips[0], [0, 5])
    assert frames.shape == (2, 64, 64, 3) and frames.dtype == np.uint8
    assert np.abs(frames[0].astype(int) - blob_video(12)[0].astype(int)).mean() < 3  # JPEG round trip


def test_empty_or_missing_prepared_data_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PreparedStore(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="index.json"):
        PreparedStore(tmp_path)


def test_train_config_sections_and_validation():
    for name in ("tiny", "cpu", "cpu-anchors", "cpu-paint", "vox256"):
        model, train = load_train_config(name)
        assert train.batch_size >= 1 and train.loss.perceptual == 10.0
    model, train = load_train_config("cpu-paint")
    assert model.generator_stretch and train.loss.painted_regions > 0 and train.uses_landmarks
    with pytest.raises(ValueError, match="unknown train config keys: bogus"):
        TrainConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="unknown train.loss config keys"):
        TrainConfig.from_dict({"loss": {"percept": 1}})
    cfg = TrainConfig.from_dict({"progressive": [[0, 128], [1000, 256]], "betas": [0.0, 0.99]})
    model, _ = load_train_config("cpu")
    assert cfg.size_at(0, model) == 128 and cfg.size_at(1500, model) == 256 and cfg.betas == (0.0, 0.99)
    small = scaled_model_config(model, 128)
    assert (small.image_size, small.feature_size) == (128, 32)
    with pytest.raises(ValueError, match="multiple of"):
        scaled_model_config(model, 130)



@pytest.mark.parametrize("key, value", [("log_every", 0), ("num_workers", -1), ("max_frame_gap", -2)])
def test_train_config_refuses_values_the_trainer_cannot_run_with(key, value):
    # log_every 0 used to pass and then stop training at its first step with "integer modulo by zero"
    with pytest.raises(ValueError, match=f"train.{key} must be ≥ 0|train.{key} must be ≥ 1"):
        TrainConfig.from_dict({key: value})


def test_landmark_movement_follows_the_frames_warp(sample_portrait):
    """PairDataset(landmarks=True): the source's landmarks and their non-rigid movement come out in normalised
    units, mirrored by a flip; a lip moved 4 px down in a 256 px crop moves 0.031 units; no movement elsewhere."""
    import cv2

    from mmfa_studio.face import create_tracker
    from mmfa_studio.train.dataset import sample_rng
    from mmfa_studio.train.landmarks import ClipLandmarks

    image = cv2.resize(cv2.cvtColor(cv2.imread(str(sample_portrait)), cv2.COLOR_BGR2RGB), (256, 256))
    tracker = create_tracker("mediapipe", max_faces=1)
    try:
        face = tracker.detect(image)[0]
    finally:
        tracker.close()
    lips = [14, 87, 178, 317, 402]  # the lower inner lip
    points = np.stack([face.landmarks[:, :2], face.landmarks[:, :2]]).astype(np.float32)
    points[1, lips, 1] += 4.0
    tracked = ClipLandmarks(points=points, depth=np.stack([face.landmarks_3d[:, 2]] * 2).astype(np.float32),
                            pose=np.stack([face.pose.as_array()] * 2), found=np.ones(2, bool))
    store = ArrayStore({"a": np.stack([image, image])}, landmarks={"a": tracked})
    plain = PairDataset(store, 128, NO_AUG, seed=0, landmarks=True)
    flipped = PairDataset(store, 128, dataclasses.replace(NO_AUG, flip=1.0), seed=0, landmarks=True)
    numbers = [n for n in range(40) if plain.pair_indices(sample_rng(0, n))[1:] == (0, 1)]
    assert numbers
    a, b = plain[numbers[0]], flipped[numbers[0]]
    assert bool(a.has_landmarks) and bool(b.has_landmarks)
    # (within the resize's half-pixel offset, which the frames' own warp has too)
    assert torch.allclose(a.source_landmarks, torch.from_numpy((2 * points[0] + 1) / 256 - 1), atol=1 / 128)
    assert torch.allclose(a.landmark_motion[lips, 1], torch.full((5,), 4 * 2 / 256), atol=0.004)
    assert a.landmark_motion[[i for i in range(478) if i not in lips]].abs().max() < 0.004
    mirror = torch.tensor([-1.0, 1.0])
    assert torch.allclose(b.source_landmarks, a.source_landmarks * mirror, atol=2 / 128)
    assert torch.allclose(b.landmark_motion, a.landmark_motion * mirror, atol=1e-4)
    assert not bool(PairDataset(store, 128, NO_AUG, landmarks=False)[numbers[0]].has_landmarks)
    # the driving frame's own landmarks, through the same warp
    assert torch.allclose(a.driving_landmarks, torch.from_numpy((2 * points[1] + 1) / 256 - 1), atol=1 / 128)


def _synthetic_landmarks(frames: int, mouth_open_frame: int, found: np.ndarray | None = None):
    """ClipLandmarks of the canonical face (in pixels) whose lower lip drops on one frame only."""
    from mmfa_studio.face.pose import canonical_face
    from mmfa_studio.train.landmarks import ClipLandmarks

    base = canonical_face().points[:478] * 40 + np.array([64, 64, 0])
    mesh3d = np.repeat(base[None], frames, axis=0)
    mesh3d[mouth_open_frame, [14, 87, 178, 317, 402], 1] += 12.0
    return ClipLandmarks(points=mesh3d[..., :2].astype(np.float32), depth=mesh3d[..., 2].astype(np.float32),
                         pose=np.zeros((frames, 3), np.float32),
                         found=np.ones(frames, bool) if found is None else found)


def test_motion_pair_choice_picks_the_frame_whose_expression_differs_most():
    from mmfa_studio.train.dataset import frame_motion_features, motion_difference

    tracked = _synthetic_landmarks(6, mouth_open_frame=4)
    features = frame_motion_features(tracked)
    assert features[4, 0] > features[0, 0] + 0.2  # the open mouth reads as open
    scores = motion_difference(features, 0, np.arange(6))
    assert int(np.argmax(scores)) == 4
    video = np.zeros((6, 128, 128, 3), np.uint8)
    store = ArrayStore({"a": video}, landmarks={"a": tracked})
    chosen = PairDataset(store, 64, NO_AUG, landmarks=True, candidates=32)
    plain = PairDataset(store, 64, NO_AUG, landmarks=True)
    from mmfa_studio.train.dataset import sample_rng

    picks = [chosen.pair_indices(sample_rng(0, n)) for n in range(30)]
    randoms = [plain.pair_indices(sample_rng(0, n)) for n in range(30)]
    # with 32 draws of 6 frames the open-mouth frame is nearly always among them: chosen unless the source is it
    assert sum(b == 4 for _, a, b in picks if a != 4) >= 0.9 * sum(a != 4 for _, a, _ in picks)
    assert sum(b == 4 for _, a, b in randoms) < 0.5 * len(randoms)
    with pytest.raises(ValueError, match="needs landmarks"):
        PairDataset(store, 64, NO_AUG, landmarks=False, candidates=4)


def test_pairs_without_a_tracked_face_are_drawn_again_when_landmarks_are_required():
    found = np.arange(8) % 2 == 0  # a quarter of the pairs have a face in both frames
    tracked = _synthetic_landmarks(8, mouth_open_frame=2, found=found)
    store = ArrayStore({"a": np.zeros((8, 64, 64, 3), np.uint8)}, landmarks={"a": tracked})
    required = PairDataset(store, 64, NO_AUG, landmarks=True, require_landmarks=True)
    assert sum(bool(required[n].has_landmarks) for n in range(40)) >= 32  # 9 draws: 92 % expected
    loose = PairDataset(store, 64, NO_AUG, landmarks=True)
    assert sum(bool(loose[n].has_landmarks) for n in range(40)) <= 20
