"""The supervised head-pose warm-up of the motion encoder."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from mmfa_studio.model import MMFA
from mmfa_studio.train.config import Augmentation
from mmfa_studio.train.dataset import ArrayStore, PairDataset, ResumableSampler, collate_pairs
from mmfa_studio.train.pose_warmup import warm_up_head_pose
from mmfa_studio.train.trainer import Trainer

from .test_trainer import options, tiny


def coloured_clips(size: int = 64, frames: int = 24, clips: int = 3) -> tuple[dict, dict]:
    """Frames whose 'pose' is written in a square's colour: yaw in its red, pitch in its green (used without flips,
    which would mirror a real head's yaw but not a colour)."""
    rng = np.random.default_rng(0)
    videos, poses = {}, {}
    for c in range(clips):
        red, green = rng.uniform(0, 1, frames), rng.uniform(0, 1, frames)
        video = np.full((frames, size, size, 3), 30, np.uint8)
        for i, (r, g) in enumerate(zip(red, green)):
            video[i, size // 4:3 * size // 4, size // 4:3 * size // 4] = (55 + 200 * r, 55 + 200 * g, 128)
        videos[f"c{c}"] = video
        poses[f"c{c}"] = np.stack([(red - 0.5) * 40, (green - 0.5) * 30, np.zeros(frames)], 1).astype(np.float32)
    return videos, poses


def test_warm_up_fits_the_pose_head_to_the_labels_and_leaves_the_other_heads():
    model_cfg, _ = tiny()
    torch.manual_seed(0)
    encoder = MMFA(model_cfg).motion_encoder
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    store = ArrayStore(*coloured_clips(model_cfg.detector_size))
    dataset = PairDataset(store, model_cfg.detector_size,
                          Augmentation(flip=0.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0), seed=1)
    batches = iter(DataLoader(dataset, batch_size=16, sampler=ResumableSampler(), collate_fn=collate_pairs))
    lines: list[str] = []
    result = warm_up_head_pose(encoder, batches, 150, 3e-3, torch.device("cpu"), log=lines.append, log_every=25)
    assert result.steps == 150 and len(lines) == 6
    assert result.last_error_deg < 0.5 * result.first_error_deg, result
    after = encoder.state_dict()
    for name in ("translation.weight", "scale.weight", "expression.0.weight"):
        assert torch.equal(after[name], before[name]), name
    assert not torch.equal(after["pose.weight"], before["pose.weight"])
    assert encoder.training  # left as it was


def test_trainer_runs_the_warm_up_on_a_fresh_start_only(tmp_path):
    model_cfg, cfg = tiny(pose_warmup_steps=3, pose_warmup_batch=2)
    store = ArrayStore(*coloured_clips(model_cfg.image_size, clips=2))
    lines: list[str] = []
    trainer = Trainer(model_cfg, cfg, store, options(tmp_path, max_steps=1, log=lines.append))
    untouched = {k: v.clone() for k, v in trainer.mmfa.motion_encoder.state_dict().items()}
    trainer.start()
    assert any("pose warm-up done" in line for line in lines)
    live, ema = trainer.mmfa.motion_encoder.state_dict(), trainer.ema.motion_encoder.state_dict()
    assert all(torch.equal(live[k], ema[k]) for k in live)  # the EMA takes the warmed-up encoder
    assert not torch.equal(live["pose.weight"], untouched["pose.weight"])
    assert trainer.run() == 1
    resumed_lines: list[str] = []
    Trainer(model_cfg, cfg, store, options(tmp_path, max_steps=2, resume=True, log=resumed_lines.append)).run()
    assert resumed_lines and not any("pose warm-up" in line for line in resumed_lines)
