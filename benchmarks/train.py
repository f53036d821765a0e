"""Training throughput benchmark: iterations/s, images/s and where a step's time goes.

    python -m benchmarks.train --config cpu --size 128 --batch 4
    python -m benchmarks.train --config cpu --size 256 --batch 32 --device cuda

Runs the real training step (every loss on, as the config sets them) on synthetic frames, so it needs no
dataset. Reports per configuration the throughput, the GFLOP/s a step achieves (its forward and backward FLOPs
counted once) and a per-part breakdown (ms per step). ``MMFA_STUDIO_THREADS=N`` sets torch's CPU threads.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from mmfa_studio.timing import count_flops, gflops_per_s
from mmfa_studio.train.config import load_train_config
from mmfa_studio.train.dataset import ArrayStore, collate_pairs
from mmfa_studio.train.trainer import RunOptions, Timer, Trainer

from .common import emit, parse_args, say


def synthetic_store(size: int, clips: int = 2, frames: int = 16, seed: int = 0) -> ArrayStore:
    """Smooth random colour fields (decoded-frame stand-ins; speed does not depend on content)."""
    rng = np.random.default_rng(seed)
    videos = {}
    for c in range(clips):
        small = rng.integers(0, 255, size=(frames, 8, 8, 3), dtype=np.uint8)
        videos[f"synthetic{c}"] = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_CUBIC) for f in small])
    return ArrayStore(videos)


def bench(config: str, size: int | None, batch: int, steps: int, warmup: int, device: str, amp: str | None,
          channels_last: bool | None, overrides: dict | None = None) -> dict:
    model_cfg, cfg = load_train_config(config)
    changes = {"batch_size": batch, "num_workers": 0, "warmup_steps": 1}
    if size:
        changes["image_size"] = size
    if amp:
        changes["amp"] = amp
    if channels_last is not None:
        changes["channels_last"] = channels_last
    changes.update(overrides or {})
    cfg = dataclasses.replace(cfg, **changes)
    data_size = cfg.largest_size(model_cfg)
    store = synthetic_store(data_size)
    timer = Timer(enabled=False)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model_cfg, cfg, store, RunOptions(run_dir=Path(tmp), device=device, tensorboard=False,
                                                            log=lambda _m: None), timer=timer)
        batches = [collate_pairs([trainer.dataset[i * batch + j] for j in range(batch)]) for i in range(4)]
        for i in range(warmup):
            trainer.train_step(batches[i % len(batches)])
        timer.enabled = True
        timer.reset()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(steps):
            with timer.section("data (collated, host)"):
                b = batches[i % len(batches)]
            trainer.train_step(b)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        # A pass without per-section synchronisation: the honest throughput on an asynchronous device.
        timer.enabled = False
        start, cpu_start = time.perf_counter(), time.process_time()
        for i in range(steps):
            trainer.train_step(batches[i % len(batches)])
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        free_elapsed = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
        try:
            flops: int | None = count_flops(lambda: trainer.train_step(batches[0]))
        except RuntimeError as exc:  # an op the counter cannot follow: the figure is left out, not guessed
            say(f"  FLOPs not counted: {exc}")
            flops = None
    return {
        "config": config, "size": trainer.size, "batch": batch, "device": str(trainer.device),
        "device_name": (torch.cuda.get_device_name(trainer.device) if trainer.device.type == "cuda"
                        else f"CPU, {torch.get_num_threads()} threads"),
        "amp": {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[trainer.amp_dtype],
        "channels_last": cfg.channels_last, "perceptual": trainer.perceptual.description,
        "it_s": steps / free_elapsed, "img_s": steps * batch / free_elapsed,
        "step_gflop": None if flops is None else flops / 1e9,
        "gflops_per_s": None if flops is None else gflops_per_s(flops, 1000 * free_elapsed / steps),
        "timed_it_s": steps / elapsed, "cpu_s_per_step": cpu_seconds / steps,
        "parts_ms": {k: 1000 * v / steps for k, v in timer.totals.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="cpu", nargs="+", help="one or more config names/paths")
    parser.add_argument("--size", type=int, default=None, help="training image size (default: the config's)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"], default=None)
    parser.add_argument("--channels-last", choices=["on", "off"], default=None)
    parser.add_argument("--perceptual-layers", default=None, help="e.g. 1,2,3 (default: the config's)")
    parser.add_argument("--perceptual-scales", default=None, help="e.g. 1,0.5 (default: the config's)")
    args = parse_args(parser, argv)
    configs = args.config if isinstance(args.config, list) else [args.config]
    cl = None if args.channels_last is None else args.channels_last == "on"
    overrides = {}
    if args.perceptual_layers:
        overrides["perceptual_layers"] = tuple(int(v) for v in args.perceptual_layers.split(","))
    if args.perceptual_scales:
        overrides["perceptual_scales"] = tuple(float(v) for v in args.perceptual_scales.split(","))
    results = []
    for config in configs:
        r = bench(config, args.size, args.batch, args.steps, args.warmup, args.device, args.amp, cl, overrides)
        results.append(r)
        flops = "" if r["gflops_per_s"] is None else f", {r['gflops_per_s']:.1f} GFLOP/s"
        say(f"{r['config']}: {r['size']} px, batch {r['batch']}, {r['device']} ({r['device_name']}), AMP {r['amp']}, "
            f"channels_last {r['channels_last']}: {r['it_s']:.2f} it/s, {r['img_s']:.1f} images/s{flops}")
        say(f"  perceptual: {r['perceptual']}")
        if not r["device"].startswith("cuda"):
            say(f"  process CPU time {r['cpu_s_per_step']:.2f} s/step over {torch.get_num_threads()} threads")
        total = sum(r["parts_ms"].values())
        say(f"  breakdown (synchronised pass, {r['timed_it_s']:.2f} it/s): ms per step")
        for name, ms in sorted(r["parts_ms"].items(), key=lambda kv: -kv[1]):
            say(f"    {name:<24} {ms:9.1f}  {100 * ms / total:5.1f} %")
    emit("train", {"runs": results}, args.save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
