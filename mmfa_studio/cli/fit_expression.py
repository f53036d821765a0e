"""``mmfa-studio fit-expression``: teach a checkpoint the anchor expression VAE and the named expression controls
from a prepared dataset's tracked landmarks (``train/expression_fit.py``); the other weights are copied."""

from __future__ import annotations

import argparse
import json

from . import UserError


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("fit-expression",
                       help="fit the dense-anchor expression latent and named controls from tracked landmarks")
    p.add_argument("--checkpoint", help="model checkpoint (default: the bundled model)")
    p.add_argument("--data", required=True, help="prepared data folder (`mmfa-studio prepare … --landmarks`)")
    p.add_argument("--out", required=True, help="where to write the checkpoint (may be --checkpoint)")
    p.add_argument("--latent-dim", type=int, default=16, help="size of the expression latent (default 16)")
    p.add_argument("--steps", type=int, default=3000, help="optimisation steps (default 3000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the fit's summary as JSON")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    import dataclasses
    import sys

    from ..checkpoint import BUNDLED_MODEL, CheckpointError, load_model, save_model
    from ..model import MMFA
    from ..motion import CONTROLS_KEY
    from ..train.expression_fit import fit_controls, fit_vae, teacher_frames
    from .render import check_writable

    if not 1 <= args.latent_dim <= 256 or not 1 <= args.steps <= 1_000_000:
        raise UserError("--latent-dim must be 1…256 and --steps 1…1000000")
    check_writable(args.out, "--out")
    try:
        model, info = load_model(args.checkpoint or BUNDLED_MODEL)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    if model.cfg.variant != "hybrid":
        raise UserError("the anchor expression is for the hybrid variant")
    try:
        frames = teacher_frames(args.data)
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from None
    log = (lambda line: print(line, file=sys.stderr)) if not args.json else None
    vae = fit_vae(frames, latent_dim=args.latent_dim, steps=args.steps, seed=args.seed, log=log)
    controls = fit_controls(vae, frames)
    config = dataclasses.replace(model.cfg, anchor_latent_dim=args.latent_dim, anchor_count=vae.anchors,
                                 anchor_hidden=vae.decoder[0].out_features)
    fitted = MMFA(config)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("anchor_expression.")}
    fitted.load_state_dict({**state, **{f"anchor_expression.{k}": v for k, v in vae.state_dict().items()}})
    summary = {"frames": int(len(frames.layouts)), "clips": int(len(set(frames.clips.tolist()))),
               "latent_dim": args.latent_dim, "steps": args.steps}
    try:
        save_model(args.out, fitted, {**info.metadata, CONTROLS_KEY: controls.to_json(),
                                      "expression_fit": summary})
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc}") from None
    print(json.dumps(summary, indent=2) if args.json else f"wrote {args.out} ({summary['frames']} frames)")
    return 0
