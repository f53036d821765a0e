"""Pack a run folder's results into files small enough to copy back from a lent machine.

    python -m mmfa_studio.train.pack RUNDIR PACKDIR [--part-mb 15] [--no-weights]

Writes into PACKDIR:
  * model_ema.safetensors — the EMA inference checkpoint (split into ``.part-NN`` pieces of at most
    ``--part-mb`` MB when larger; rejoin with ``cat model_ema.safetensors.part-* > model_ema.safetensors``);
  * train_weights.pt — generator, discriminator and EMA weights + step and configs, without optimiser state
    (less than half a full checkpoint; continue with ``mmfa-studio train --init-from train_weights.pt``),
    split the same way;
  * train.log (its last ``--part-mb`` MB) when RUNDIR has one, and the latest TensorBoard events file.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from ..atomic import atomic_path
from .run_state import CHECKPOINT_FORMAT, CHECKPOINT_NAME, EMA_NAME, WEIGHTS_FORMAT


def split_file(path: Path, out_dir: Path, part_bytes: int) -> list[Path]:
    """Copy ``path`` into ``out_dir`` whole, or as name.part-00, name.part-01 … pieces of ≤ part_bytes."""
    size = path.stat().st_size
    if size <= part_bytes:
        target = out_dir / path.name
        shutil.copyfile(path, target)
        return [target]
    parts = []
    with open(path, "rb") as src:
        for i in range((size + part_bytes - 1) // part_bytes):
            target = out_dir / f"{path.name}.part-{i:02d}"
            with atomic_path(target) as tmp:
                tmp.write_bytes(src.read(part_bytes))
            parts.append(target)
    return parts


def weights_only(checkpoint: Path, target: Path) -> None:
    state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{checkpoint} is not an MMFA Studio training checkpoint")
    slim = {k: state[k] for k in ("step", "samples_seen", "elapsed_s", "model_config", "train_config",
                                  "generator", "discriminator", "ema")}
    slim["format"] = WEIGHTS_FORMAT
    with atomic_path(target) as tmp:
        torch.save(slim, tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmfa_studio.train.pack", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("pack_dir")
    parser.add_argument("--part-mb", type=float, default=15.0)
    parser.add_argument("--no-weights", action="store_true", help="only the EMA model and the log")
    args = parser.parse_args(argv)
    run, pack = Path(args.run_dir), Path(args.pack_dir)
    part = int(args.part_mb * 1024 * 1024)
    if not (run / EMA_NAME).is_file():
        print(f"pack: error: {run / EMA_NAME} not found", file=sys.stderr)
        return 2
    pack.mkdir(parents=True, exist_ok=True)
    written = split_file(run / EMA_NAME, pack, part)
    if not args.no_weights and (run / CHECKPOINT_NAME).is_file():
        tmp = run / "train_weights.pt"
        weights_only(run / CHECKPOINT_NAME, tmp)
        written += split_file(tmp, pack, part)
        tmp.unlink()
    log = run / "train.log"
    if log.is_file():
        data = log.read_bytes()[-part:]
        (pack / "train.log").write_bytes(data)
        written.append(pack / "train.log")
    events = sorted((run / "tensorboard").glob("events.out.tfevents.*"), key=lambda e: e.stat().st_mtime)
    if events and events[-1].stat().st_size <= part:  # the latest TensorBoard log (scalars + image grids)
        shutil.copyfile(events[-1], pack / events[-1].name)
        written.append(pack / events[-1].name)
    for p in written:
        print(f"pack: {p} ({p.stat().st_size / 1e6:.1f} MB)")
    if any(".part-" in p.name for p in written):
        print("pack: rejoin pieces with: cat NAME.part-* > NAME")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
