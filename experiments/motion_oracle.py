"""Is the renderer or the motion encoder what limits reconstruction? Fit the driving motion by gradient descent.

    .venv/bin/python experiments/motion_oracle.py VIDEO_FOLDER [--checkpoint CKPT] [--frames 4] [--iterations 60]

For each video the first frame with a face is the source and the later frames (cropped at the source's box, as
``mmfa-studio evaluate`` does) are the driving frames. Three reconstructions are compared in L1:

* copy: the source itself;
* model: the motion encoder's reading of each driving frame (what ``evaluate`` measures);
* oracle: the same networks, with each driving frame's motion fitted to that frame by Adam, starting from the
  encoder's reading — first pose, translation and scale only (7 numbers per frame), then with δ as well.

The oracle is not a model (it sees the answer); it bounds what a better motion encoder could give this renderer.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from mmfa_studio.engine import Engine
from mmfa_studio.eval.evaluate import crop_clip, list_videos, read_spread_frames
from mmfa_studio.model.mmfa import MMFA, SourceEncoding, TargetMotion

POSE_FIELDS = ("yaw", "pitch", "roll", "translation", "scale")


def fitted_l1(model: MMFA, source: SourceEncoding, start: TargetMotion, driving: torch.Tensor, iterations: int,
              fit_delta: bool) -> float:
    """L1 of the render after fitting the motion (and δ when ``fit_delta``) to ``driving`` (B×3×H×W)."""
    fields = POSE_FIELDS + (("delta",) if fit_delta else ())
    params = {name: getattr(start, name).detach().clone().requires_grad_(name in fields)
              for name in POSE_FIELDS + ("delta",)}
    # Per-group steps sized to each quantity: degrees, normalised units, δ (|δ| ≲ 0.06 in the bundled model).
    groups = [{"params": [params["yaw"], params["pitch"], params["roll"]], "lr": 0.5},
              {"params": [params["translation"], params["scale"]], "lr": 5e-3}]
    if fit_delta:
        groups.append({"params": [params["delta"]], "lr": 2e-3})
    optimiser = torch.optim.Adam(groups)
    for _ in range(iterations):
        loss = (model.render(source, TargetMotion(**params), all_scales=False).image - driving).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        return (model.render(source, TargetMotion(**params), all_scales=False).image - driving).abs().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=60)
    args = parser.parse_args()
    torch.manual_seed(0)
    engine = Engine.load(args.checkpoint, device="cpu", precision="fp32")
    model = engine.model.requires_grad_(False)
    rows = []
    for video in list_videos(args.folder):
        crops = crop_clip(engine, read_spread_frames(video, args.frames))
        if crops is None or not crops.driving:
            print(f"{video.name}: no face before the last frame, skipped")
            continue
        images = torch.from_numpy(np.stack([crops.source, *crops.driving])).permute(0, 3, 1, 2).float() / 255
        source_image, driving = images[:1], images[1:]
        with torch.no_grad():
            source = model.encode_source(source_image)
            encoded = TargetMotion.from_encoding(*model.encode_motion(driving))
            read = (model.render(source, encoded, all_scales=False).image - driving).abs().mean().item()
        copy = (source_image - driving).abs().mean().item()
        pose_only = fitted_l1(model, source, encoded, driving, args.iterations, fit_delta=False)
        with_delta = fitted_l1(model, source, encoded, driving, args.iterations, fit_delta=True)
        rows.append((copy, read, pose_only, with_delta))
        print(f"{video.name[:32]:<33} {_line(copy, read, pose_only, with_delta)}", flush=True)
    if rows:
        print(f"overall L1: {_line(*np.mean(rows, axis=0))}")


def _line(copy: float, read: float, pose_only: float, with_delta: float) -> str:
    gain = lambda v: f"{v:.4f} ({100 * (1 - v / copy):+.1f} %)"
    return f"copy {copy:.4f}  model {gain(read)}  oracle pose {gain(pose_only)}  oracle pose+δ {gain(with_delta)}"


if __name__ == "__main__":
    main()
