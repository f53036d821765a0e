"""``mmfa-studio fit-expression``: teach a checkpoint the anchor expression VAE and the named expression controls
from a prepared dataset's tracked landmarks (``train/expression_fit.py``), or take them from another checkpoint
(``--expression-from``: a retrained renderer keeps the expression space, so saved latents and keyframes mean the
same); the other weights are copied."""

from __future__ import annotations

import argparse
import json

from . import UserError


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("fit-expression",
                       help="fit the dense-anchor expression latent and named controls from tracked landmarks")
    p.add_argument("--checkpoint", help="model checkpoint (default: the bundled model)")
    p.add_argument("--data", help="prepared data folder (`mmfa-studio prepare … --landmarks`)")
    p.add_argument("--expression-from", metavar="CKPT",
                   help="take the expression VAE and named controls of this checkpoint instead of fitting them")
    p.add_argument("--out", required=True, help="where to write the checkpoint (may be --checkpoint)")
    p.add_argument("--latent-dim", type=int, default=16, help="size of the expression latent (default 16)")
    p.add_argument("--steps", type=int, default=3000, help="optimisation steps (default 3000)")
    p.add_argument("--closed-lids", type=float, default=0.0, metavar="SHARE",
                   help="share of each batch whose lids are closed synthetically, mostly one eye (default 0): "
                        "teaches the latent winks the training clips hardly hold")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the fit's summary as JSON")
    # --out may be --checkpoint (in place, as calibrate), never the checkpoint it copies from
    p.set_defaults(func=run, writes=("out",), reads={"expression_from": "--expression-from checkpoint"})
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
    if not 0.0 <= args.closed_lids <= 1.0:
        raise UserError(f"--closed-lids must be in [0, 1], not {args.closed_lids:g}")
    if (args.data is None) == (args.expression_from is None):
        raise UserError("give either --data (to fit) or --expression-from (to copy)")
    check_writable(args.out, "--out")
    try:
        model, info = load_model(args.checkpoint or BUNDLED_MODEL)
        donor = load_model(args.expression_from) if args.expression_from else None
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    if model.cfg.variant != "hybrid":
        raise UserError("the anchor expression is for the hybrid variant")
    if donor is not None:
        donor_model, donor_info = donor
        if donor_model.anchor_expression is None or CONTROLS_KEY not in donor_info.metadata:
            raise UserError(f"{args.expression_from} has no anchor expression (fit one with --data)")
        vae, controls_json = donor_model.anchor_expression, donor_info.metadata[CONTROLS_KEY]
        summary = {**donor_info.metadata.get("expression_fit", {}), "copied_from": str(args.expression_from)}
    else:
        try:
            frames = teacher_frames(args.data)
        except (OSError, ValueError) as exc:
            raise UserError(str(exc)) from None
        log = (lambda line: print(line, file=sys.stderr)) if not args.json else None
        vae = fit_vae(frames, latent_dim=args.latent_dim, steps=args.steps, closed_lids=args.closed_lids,
                      seed=args.seed, log=log)
        controls_json = fit_controls(vae, frames).to_json()
        summary = {"frames": int(len(frames.layouts)), "clips": int(len(set(frames.clips.tolist()))),
                   "latent_dim": args.latent_dim, "steps": args.steps, "closed_lids": args.closed_lids}
    config = dataclasses.replace(model.cfg, anchor_latent_dim=vae.latent_dim, anchor_count=vae.anchors,
                                 anchor_hidden=vae.decoder[0].out_features)
    fitted = MMFA(config)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("anchor_expression.")}
    fitted.load_state_dict({**state, **{f"anchor_expression.{k}": v for k, v in vae.state_dict().items()}})
    try:
        save_model(args.out, fitted, {**info.metadata, CONTROLS_KEY: controls_json, "expression_fit": summary})
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc}") from None
    print(json.dumps(summary, indent=2) if args.json else f"wrote {args.out} ({summary.get('frames', '?')} frames)")
    return 0
