"""How much of a driver's expression change the anchor VAE's latent carries, on clips it was not fitted on.

For pairs of frames (reference r, driver d) of one held-out clip, the teacher's change of each measure (mouth
opening, each eye's opening, mouth width, brow height) between the two canonical layouts, against the change the
render would show: the reference's layout moved by decode(z_d) − decode(z_r) (reenactment's relative latent with
the reference as the source). Pearson r and gain (least-squares slope) per measure; the gain is what the render's
expression following can reach at most through the latent.

    python experiments/anchor_vae_gain.py DATA [--held DATA2] [--checkpoint CKPT] [--fit key=value ...]

DATA: a dataset prepared with ``--landmarks``. ``--checkpoint``: measure that file's VAE on ``--held`` (default:
DATA). ``--fit``: fit a VAE on DATA's clips (every tenth clip held out unless ``--held`` is given) with these
``fit_vae`` arguments and measure it, e.g. ``--fit kl_weight=1e-4 latent_dim=32``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from mmfa_studio.face.anchors import anchor_measures, without_head_motion
from mmfa_studio.train.expression_fit import MEASURES, TeacherFrames, fit_vae, teacher_frames


def subset(frames: TeacherFrames, keep: np.ndarray) -> TeacherFrames:
    return TeacherFrames(frames.layouts[keep], frames.offsets[keep], frames.clips[keep])


def following(vae, frames: TeacherFrames, pairs_per_clip: int = 64, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        mu = vae.encode(torch.as_tensor(frames.layouts, dtype=torch.float32))[0]
        decoded = vae.decode(mu).numpy().astype(np.float64)
    true, shown = {m: [] for m in MEASURES}, {m: [] for m in MEASURES}
    for clip in np.unique(frames.clips):
        rows = np.flatnonzero(frames.clips == clip)
        for _ in range(pairs_per_clip):
            r, d = rng.choice(rows, size=2, replace=False)
            reference = frames.layouts[r].astype(np.float64)
            change = without_head_motion(reference, decoded[d] - decoded[r])
            before = anchor_measures(reference)
            real = anchor_measures(frames.layouts[d].astype(np.float64))
            moved = anchor_measures(reference + change)
            for m in MEASURES:
                true[m].append(float(real[m] - before[m]))
                shown[m].append(float(moved[m] - before[m]))
    out = {}
    for m in MEASURES:
        x, y = np.asarray(true[m]), np.asarray(shown[m])
        out[m] = {"r": round(float(np.corrcoef(x, y)[0, 1]), 3), "gain": round(float((x @ y) / (x @ x)), 3)}
    out["reconstruction"] = round(float(((decoded - frames.offsets) ** 2).mean() / (frames.offsets ** 2).mean()), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--held")
    parser.add_argument("--checkpoint")
    parser.add_argument("--fit", nargs="*", default=None)
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    frames = teacher_frames(args.data)
    held = teacher_frames(args.held) if args.held else None
    report = {}
    if args.checkpoint:
        from mmfa_studio.checkpoint import load_model
        vae = load_model(args.checkpoint)[0].anchor_expression.eval()
        report["checkpoint"] = following(vae, held or frames)
    if args.fit is not None:
        kwargs = {k: (int(v) if v.isdigit() else float(v)) for k, v in (a.split("=") for a in args.fit)}
        if held is None:
            held_out = np.isin(frames.clips, np.unique(frames.clips)[::10])
            fit, held = subset(frames, ~held_out), subset(frames, held_out)
        else:
            fit = frames
        vae = fit_vae(fit, steps=args.steps, **kwargs)
        report["fit"] = {"args": kwargs, "held": following(vae, held), "fitted": following(vae, fit, 8)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
