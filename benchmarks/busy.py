"""Reenactment beside a busy competitor: how much of its speed survives a process spinning on one core.

    python -m benchmarks.busy [--checkpoint PATH] [--clip VIDEO] [--frames 40] [--seconds 20] [--save]

Measures ``Reenactor.process`` (tracking + render, decoding excluded) on the same decoded frames three times:
alone, beside a spawned process that spins on one core (pinned to the last core this process may use), and
alone again, each with a new Reenactor, whose thread tuner (``runtime.ThreadTuner``) times 2 and 1 torch threads
and keeps the faster. The ratio is the loaded fps over the mean of the two quiet ones (target ≥ 0.4: one competitor
takes half of a 2-core machine, so a fair share keeps about half the speed). The thread plan in the JSON header is the
one measured; ``MMFA_STUDIO_THREADS=1 python -m benchmarks.busy`` measures another.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time

from mmfa_studio.engine import Engine, resolve_device
from mmfa_studio.runtime import available_cores

from .common import emit, parse_args, say
from .engine import decode, find_clip, reenact_fps, resolve_checkpoint, tracker_available

TARGET_RATIO = 0.4


def spin(core: int | None) -> None:
    """The competitor: one busy core, forever (terminated by the parent)."""
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    x = 0
    while True:
        x += 1


def measured(what: str, engine: Engine, source, frames, seconds: float) -> dict[str, float | int]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu, wall = time.process_time(), time.perf_counter()
    result = reenact_fps(engine, source, frames, seconds)
    cpu_share = (time.process_time() - cpu) / (time.perf_counter() - wall)
    say(f"{what}: {result['fps']:.1f} fps over {result['frames']} frames (this process used {cpu_share:.2f} cores; "
        f"load average {load:.2f} before)")
    return {**result, "load_average_1min_before": load, "cores_used": cpu_share}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.busy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="model (default: bundled, else a random cpu-config model)")
    parser.add_argument("--config", help="a random-weight model of this config instead (tiny, cpu, vox256)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clip", help="driving clip (default: a 512 px clip from ../shared/data, else synthetic)")
    parser.add_argument("--frames", type=int, default=40, help="frames per measurement")
    parser.add_argument("--seconds", type=float, default=20.0, help="stop a measurement after this long")
    args = parse_args(parser, argv)
    if not tracker_available():
        say("reenactment needs the face tracker (mediapipe), which is not installed here")
        return 2

    path, what = resolve_checkpoint(args.checkpoint, args.config)
    clip = find_clip(args.clip)
    frames, _ = decode(clip, args.frames + 1)
    device = resolve_device(args.device)
    with Engine.load(path, device=str(device), precision="auto", output_size=None) as engine:
        source = engine.prepare_crop(frames[0]) if clip == "synthetic" else engine.prepare_source(frames[0])
        quiet_before = measured("alone", engine, source, frames, args.seconds)
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [None]
        competitor = multiprocessing.get_context("spawn").Process(target=spin, args=(cores[-1],), daemon=True)
        competitor.start()
        try:
            time.sleep(0.5)  # let it reach its loop
            loaded = measured(f"beside a process spinning on core {cores[-1]}", engine, source, frames, args.seconds)
        finally:
            competitor.terminate()
            competitor.join()
        quiet_after = measured("alone again", engine, source, frames, args.seconds)
        precision = engine.precision
    quiet_fps = (quiet_before["fps"] + quiet_after["fps"]) / 2
    ratio = loaded["fps"] / quiet_fps
    say(f"loaded / quiet = {ratio:.2f}   target ≥ {TARGET_RATIO}")
    emit("busy", {"model": what, "clip": clip, "device": str(device), "precision": precision,
                  "cores_available": available_cores(), "competitor_core": cores[-1],
                  "quiet_before": quiet_before, "loaded": loaded,
                  "quiet_after": quiet_after, "quiet_fps": quiet_fps, "loaded_fps": loaded["fps"],
                  "loaded_over_quiet": ratio, "target_ratio": TARGET_RATIO}, args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
