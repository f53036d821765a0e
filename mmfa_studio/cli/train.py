"""``mmfa-studio train``: train an MMFA model on a prepared dataset (CPU or CUDA; DDP under torchrun).

    mmfa-studio train --config cpu --data DATA [--out RUNDIR] [--resume] [--device auto]
                      [--max-steps N] [--minutes M] [--vgg-weights PATH] [--batch-size B] [--image-size S]
    torchrun --nproc-per-node 4 -m mmfa_studio.cli.train --config vox256 --data DATA --out RUNDIR

Also runnable as ``python -m mmfa_studio.cli.train`` (imports nothing of the GUI).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

from . import UserError


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train", help="train a model on a prepared dataset",
        description="Train MMFA on data written by `mmfa-studio prepare`. Checkpoints go to RUNDIR every "
                    "train.checkpoint_minutes, at the end and on Ctrl-C/SIGTERM; RUNDIR/model_ema.safetensors is "
                    "the EMA generator as an inference checkpoint. Multi-GPU: run under torchrun.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="cpu", help="bundled config name (tiny, cpu, vox256) or a YAML path")
    parser.add_argument("--data", required=True, help="folder written by `mmfa-studio prepare`")
    parser.add_argument("--out", default=None, help="run folder (default: runs/<config>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--init-from", default=None, help="start from the weights of a training checkpoint "
                        "(checkpoint.pt or a packed train_weights.pt), or of an inference checkpoint "
                        "(.safetensors, e.g. mmfa_studio/assets/mmfa-cpu.safetensors: generator + EMA, fresh "
                        "discriminator); optimisers start fresh")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps in total")
    parser.add_argument("--minutes", type=float, default=None, help="stop cleanly (and save) after this many minutes")
    parser.add_argument("--vgg-weights", default=None, help="vgg_shift_tolerant.pth for the perceptual loss "
                        "(default: the stlpips-pytorch package's copy, or $MMFA_VGG_WEIGHTS)")
    parser.add_argument("--perceptual-backbone", choices=["vgg16-st", "none"], default=None,
                        help="override train.perceptual_backbone (none: multi-scale pixel L1, no pretrained net)")
    parser.add_argument("--perceptual-layers", default=None, help="override train.perceptual_layers, e.g. 1,2,3")
    parser.add_argument("--batch-size", type=int, default=None, help="override train.batch_size (per process)")
    parser.add_argument("--image-size", type=int, default=None, help="override train.image_size")
    parser.add_argument("--num-workers", type=int, default=None, help="override train.num_workers")
    parser.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"], default=None, help="override train.amp")
    parser.add_argument("--loss", action="append", default=[], metavar="NAME=WEIGHT",
                        help="override a loss weight, e.g. --loss head_pose=1 (repeatable; names: train.loss keys)")
    parser.add_argument("--lr", type=float, default=None, help="override both learning rates")
    parser.add_argument("--checkpoint-minutes", type=float, default=None, help="override train.checkpoint_minutes")
    parser.add_argument("--log-every", type=int, default=None, help="override train.log_every")
    parser.add_argument("--seed", type=int, default=None, help="override train.seed")
    parser.add_argument("--freeze", default=None, metavar="PARTS",
                        help="override train.freeze: comma-separated MMFA parts kept fixed, "
                             "e.g. keypoint_detector,motion_encoder")
    parser.add_argument("--pose-warmup", type=int, default=None, metavar="STEPS",
                        help="override train.pose_warmup_steps: fit the motion encoder's head pose to the prepared "
                        "pseudo-labels first (fresh runs and --init-from; 0 = off)")


def _overrides(args: argparse.Namespace) -> dict:
    mapping = {
        "batch_size": args.batch_size, "image_size": args.image_size, "num_workers": args.num_workers,
        "amp": args.amp, "checkpoint_minutes": args.checkpoint_minutes, "log_every": args.log_every,
        "seed": args.seed, "perceptual_backbone": args.perceptual_backbone, "pose_warmup_steps": args.pose_warmup,
    }
    out = {k: v for k, v in mapping.items() if v is not None}
    if args.perceptual_layers:
        try:
            out["perceptual_layers"] = tuple(int(v) for v in args.perceptual_layers.split(","))
        except ValueError:
            raise UserError("--perceptual-layers: expected numbers like 1,2,3, "
                            f"not {args.perceptual_layers!r}") from None
    if args.freeze is not None:
        out["freeze"] = tuple(name.strip() for name in args.freeze.split(",") if name.strip())
    if args.lr is not None:
        out["lr_generator"] = out["lr_discriminator"] = args.lr
    return out


def _loss_weights(weights, items: list[str]):
    known = {f.name for f in dataclasses.fields(weights)}
    changes = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in known:
            raise ValueError(f"--loss {item}: unknown loss {name!r} (known: {', '.join(sorted(known))})")
        try:
            changes[name] = float(value)
        except ValueError:
            raise ValueError(f"--loss {item}: the weight must be a number") from None
    return dataclasses.replace(weights, **changes)


def run(args: argparse.Namespace) -> int:
    started_at = time.time()  # --minutes counts from here: loading data and building the model included
    from ..train.config import load_train_config, scaled_model_config
    from ..train.dataset import PreparedStore
    from ..train.trainer import RunOptions, Trainer

    try:
        model_cfg, train_cfg = load_train_config(args.config)
        train_cfg = dataclasses.replace(train_cfg, **_overrides(args))
        if args.loss:
            train_cfg = dataclasses.replace(train_cfg, loss=_loss_weights(train_cfg.loss, args.loss))
        if train_cfg.image_size:
            scaled_model_config(model_cfg, train_cfg.image_size)  # validates the size
    except (FileNotFoundError, ValueError, TypeError) as exc:
        raise UserError(f"config: {exc}") from None
    data = Path(args.data)
    if not data.exists():
        raise UserError(f"training data folder {data} does not exist (make one with `mmfa-studio prepare`)")
    if not data.is_dir():
        raise UserError(f"training data {data} is not a folder")
    try:
        store = PreparedStore(data)
    except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
        raise UserError(f"training data {data}: {exc}") from None
    if not store.clips:
        raise UserError(f"training data {data} holds no clips")
    name = Path(args.config).stem if str(args.config).endswith((".yaml", ".yml")) else str(args.config)
    out = Path(args.out) if args.out else Path("runs") / name
    options = RunOptions(
        run_dir=out, device=args.device, resume=args.resume, max_steps=args.max_steps, minutes=args.minutes,
        started_at=started_at,
        vgg_weights=args.vgg_weights, config_name=name, data_description=str(data),
        init_from=Path(args.init_from) if args.init_from else None,
    )
    if args.init_from and not Path(args.init_from).is_file():
        raise UserError(f"--init-from: {args.init_from} does not exist")
    try:
        out.mkdir(parents=True, exist_ok=True)
        trainer = Trainer(model_cfg, train_cfg, store, options)
        trainer.start()
    except (FileNotFoundError, FileExistsError, ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    trainer.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m mmfa_studio.cli.train``, torchrun): the same errors and exit codes."""
    parser = argparse.ArgumentParser(prog="mmfa-studio train")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as exc:
        print(f"mmfa-studio train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmfa-studio train: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("MMFA_DEBUG"):
            raise
        print(f"mmfa-studio train: internal error: {type(exc).__name__}: {exc} (MMFA_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
