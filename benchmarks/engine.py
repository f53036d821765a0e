"""Engine benchmark: re-render latency, source preparation time and reenactment throughput.

    python -m benchmarks.engine [--checkpoint PATH] [--device auto] [--clip VIDEO] [--save]

* re-render: median ms of ``Engine.render`` (one new motion each call: keypoints → dense motion → warp →
  generator → uint8), at the model's size (256 px for the cpu config), for each precision asked for, beside
  the GFLOP/s it achieves (the render's FLOPs counted once in fp32 by ``mmfa_studio.timing.count_flops``);
* detail: median ms of a re-render that also renders the face at the photo's resolution (the default output,
  ``mmfa_studio/engine/detail.py``), alone and pasted back, for photos whose face crop is 512 and 1024 px;
* preparation: median ms of ``Engine.prepare_source`` (detect + crop + encode) with the cache cleared, plus the
  first call (which also starts the face tracker);
* reenactment: frames per second of ``Reenactor.process_stream`` on a real clip (tracking + crop + reading the
  driver + render), decoding excluded and reported apart; as live video runs it (the webcam panel and ``live``:
  the model's crop, no render at the photo's resolution), frame by frame beside it, and with that detail render
  as ``reenact`` to a file runs it (``reenact_detail_*``).

With no ``--checkpoint`` and no bundled model, a randomly initialised cpu-config model is timed (same
architecture and cost as the trained one; the output says so). Targets (2-core CPU): re-render ≤ 25 ms in bf16,
preparation ≤ 1 s, live reenactment ≥ 30 fps; on a GPU, re-render ≤ 3 ms in fp16.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mmfa_studio.checkpoint import BUNDLED_MODEL, save_model
from mmfa_studio.engine import (
    SAMPLE_PORTRAIT,
    Engine,
    Motion,
    PreparedSource,
    Reenactor,
    open_frame_source,
    resolve_device,
)
from mmfa_studio.model import MMFA, load_model_config
from mmfa_studio.timing import count_flops, gflops_per_s, time_calls

from .common import SHARED_DATA, emit, parse_args, say

# 512 px talking heads from ../shared/data (first one present wins); the synthetic source otherwise.
DEFAULT_CLIPS = ("videos/liveportrait__d0.mp4", "videos/v-express__RD_Radio10_0_clip_0.mp4",
                 "videos/liveportrait__d18.mp4")


def edit(i: int) -> Motion:
    """A different edit each call (nothing can be cached between calls)."""
    return Motion(yaw=15 * np.sin(i * 0.7), pitch=8 * np.cos(i * 0.5), roll=4 * np.sin(i * 0.3),
                  scale=1 + 0.05 * np.sin(i))


def resolve_checkpoint(path: str | None, config: str | None = None) -> tuple[Path, str]:
    if path:
        return Path(path), "given checkpoint"
    if config is None and BUNDLED_MODEL.is_file():
        return BUNDLED_MODEL, "bundled model"
    config = config or "cpu"
    torch.manual_seed(0)
    tmp = Path(tempfile.gettempdir()) / f"mmfa_bench_random_{config}.safetensors"
    save_model(tmp, MMFA(load_model_config(config)), {"note": "random weights, for timing only"})
    why = "" if config != "cpu" or BUNDLED_MODEL.is_file() else "no bundled model; "
    return tmp, f"RANDOM-WEIGHT {config}-config model ({why}same architecture and cost as a trained one)"


def find_clip(path: str | None) -> str:
    if path:
        return path
    for rel in DEFAULT_CLIPS:
        if (SHARED_DATA / rel).is_file():
            return str(SHARED_DATA / rel)
    return "synthetic"


def render_flops(path: Path, device: torch.device, source: PreparedSource) -> int:
    """FLOPs of one re-render, counted on an fp32 engine (the same arithmetic in every precision)."""
    with Engine.load(path, device=str(device), precision="fp32", cuda_graphs=False) as engine:
        src = engine.prepare_crop(source.crop)
        engine.render(src, edit(0))
        return count_flops(lambda: engine.render(src, edit(1)))


def bench_render(engine: Engine, source: PreparedSource, repeats: int, flops: int) -> dict[str, float]:
    render = time_calls(lambda i: engine.render(source, edit(i)), repeats)
    paste = time_calls(lambda i: engine.render(source, edit(i), paste_back=True), max(5, repeats // 3))
    batch = 4
    batched = time_calls(lambda i: engine.render_batch(source, [edit(i * batch + k) for k in range(batch)],
                                                       batch_size=batch), max(3, repeats // 6), warmup=1)
    z = engine.expressions.sample(0)
    expr = time_calls(lambda i: engine.render(source, Motion(expression=tuple(z), expression_strength=0.5 + 0.01 * i)),
                      max(5, repeats // 3))
    report = {"render_ms_median": render.median_ms, "render_ms_p90": render.p90_ms, "render_ms_min": render.min_ms,
              "render_gflops_per_s": gflops_per_s(flops, render.median_ms),
              "render_paste_back_ms_median": paste.median_ms, "render_with_expression_ms_median": expr.median_ms,
              "export_ms_per_frame_batch4": batched.median_ms / batch,
              "export_gflops_per_s_batch4": gflops_per_s(flops * batch, batched.median_ms)}
    if engine.cuda_graphs:  # check the CUDA-graph path against eager rendering, and time eager too
        motions = [Motion(), edit(5), Motion(yaw=-20, expression=tuple(z), expression_strength=0.7), edit(9)]
        graphed = [engine.render(source, m) for m in motions]
        engine.cuda_graphs = False
        eager = [engine.render(source, m) for m in motions]
        report["eager_render_ms_median"] = time_calls(lambda i: engine.render(source, edit(i)), repeats).median_ms
        engine.cuda_graphs = True
        report["graph_vs_eager_crop_max_abs"] = max(int(np.abs(a.crop.astype(int) - b.crop.astype(int)).max())
                                                    for a, b in zip(graphed, eager))
        report["graph_vs_eager_keypoints_max_abs_px"] = max(float(np.abs(a.keypoints - b.keypoints).max())
                                                            for a, b in zip(graphed, eager))
        kp = source.encoding.keypoints[0, :, :2].float().cpu().numpy()
        pixels = (kp + 1) * engine.image_size / 2 - 0.5
        report["graph_zero_edit_keypoint_error_px"] = float(np.abs(graphed[0].keypoints - pixels).max())
    return report


def bench_detail(path: Path, device: torch.device, precision: str, repeats: int) -> dict[str, float]:
    """Re-render ms at the default output size for the sample photo resized so its face crop is 512 and 1024 px."""
    import cv2

    photo = cv2.cvtColor(cv2.imread(str(SAMPLE_PORTRAIT)), cv2.COLOR_BGR2RGB)
    report: dict[str, float] = {}
    with Engine.load(path, device=str(device), precision=precision) as engine:
        side = engine.prepare_source(photo).transform.box[2]
        for crop_side in (512, 1024):
            factor = crop_side / side
            resized = cv2.resize(photo, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
            source = engine.prepare_source(resized)
            report[f"detail{crop_side}_crop_px"] = int(source.detail.shape[0]) if source.detail is not None else 0
            report[f"detail{crop_side}_render_ms_median"] = time_calls(
                lambda i, src=source: engine.render(src, edit(i)), repeats).median_ms
            report[f"detail{crop_side}_paste_back_ms_median"] = time_calls(
                lambda i, src=source: engine.render(src, edit(i), paste_back=True), max(5, repeats // 3)).median_ms
    return report


def tracker_available() -> bool:
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        return False
    return True


def bench_prepare(engine: Engine, repeats: int) -> tuple[dict[str, float | str], PreparedSource]:
    engine.close()  # drop the tracker and cache: the first call pays for starting the tracker
    if not tracker_available():  # e.g. a GPU box without mediapipe: time the encoder on a whole-photo crop
        import cv2

        photo = cv2.cvtColor(cv2.imread(str(SAMPLE_PORTRAIT)), cv2.COLOR_BGR2RGB)
        timing = time_calls(lambda i: engine.prepare_crop(photo), repeats, warmup=1)
        return ({"prepare_ms_first": float("nan"), "prepare_ms_median": timing.median_ms,
                 "prepare_note": "no face tracker here: encoding only"}, engine.prepare_crop(photo))
    start = time.perf_counter()
    source = engine.prepare_source(SAMPLE_PORTRAIT)
    first = (time.perf_counter() - start) * 1000

    def again(_: int) -> None:
        engine._cache.clear()  # time the real work, not the cache
        engine.prepare_source(SAMPLE_PORTRAIT)

    return {"prepare_ms_first": first, "prepare_ms_median": time_calls(again, repeats, warmup=1).median_ms}, source


def decode(clip: str, frames: int) -> tuple[list[np.ndarray], float]:
    """The clip's first ``frames`` frames and the decoding time per frame (ms)."""
    with open_frame_source(clip) as src:
        decoded, start = [], time.perf_counter()
        for frame in src:
            decoded.append(frame)
            if len(decoded) >= frames:
                break
    return decoded, (time.perf_counter() - start) * 1000 / max(len(decoded), 1)


def reenact_fps(engine: Engine, source: PreparedSource, frames: list[np.ndarray],
                seconds: float = float("inf"), detail: bool = False) -> dict[str, float | int]:
    """Frames per second of ``Reenactor.process`` over ``frames`` (stopping after ``seconds``); ``detail``: also
    render at the photo's resolution (live video does not)."""
    times, found = [], 0
    with Reenactor(engine, source, fps=30.0, detail=detail) as reenactor:
        reenactor.process(frames[0])  # starts the tracker; not timed
        for f in frames[1:]:
            start = time.perf_counter()
            found += reenactor.process(f).face_found
            times.append(time.perf_counter() - start)
            if sum(times) > seconds:
                break
    n, total = len(times), sum(times)
    return {"frames": n, "faces_found": int(found), "fps": n / total, "ms_per_frame": 1000 * total / n,
            "ms_per_frame_p10": 1000 * float(np.percentile(times, 10))}


def pipelined_fps(engine: Engine, source: PreparedSource, frames: list[np.ndarray],
                  detail: bool = False) -> dict[str, float | int]:
    """Frames per second of ``Reenactor.process_stream`` (tracking of frame n + 1 beside the render of n)."""
    with Reenactor(engine, source, fps=30.0, detail=detail) as reenactor:
        reenactor.process(frames[0])  # starts the tracker; not timed
        start = time.perf_counter()
        found = sum(r.face_found for r in reenactor.process_stream(frames[1:]))
        total = time.perf_counter() - start
    n = len(frames) - 1
    return {"frames": n, "faces_found": int(found), "fps": n / total, "ms_per_frame": 1000 * total / n}


def bench_reenact(engine: Engine, source: PreparedSource, clip: str, frames: int) -> dict[str, float | str]:
    """Reenactment as live video runs it (pipelined, the model's crop), frame by frame (``process``, as the app's
    webcam loop) beside it, and with the render at the photo's resolution as ``reenact`` to a file runs it."""
    decoded, decode_ms = decode(clip, frames)
    h, w = decoded[0].shape[:2]
    measured = pipelined_fps(engine, source, decoded)
    sequential = reenact_fps(engine, source, decoded)
    with_detail = pipelined_fps(engine, source, decoded, detail=True)
    return {"reenact_clip": clip, "reenact_frame_size": f"{w}x{h}", "decode_ms_per_frame": decode_ms,
            **{f"reenact_{k}": v for k, v in measured.items()},
            **{f"reenact_sequential_{k}": v for k, v in sequential.items()},
            **{f"reenact_detail_{k}": v for k, v in with_detail.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.engine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="model to time (default: bundled, else a random cpu-config model)")
    parser.add_argument("--config", help="time a random-weight model of this config instead (tiny, cpu, vox256)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precisions", default=None,
                        help="comma list to compare (default: fp32,bf16 on CPU; fp32,fp16 on CUDA); the first "
                             "one that 'auto' picks is used for preparation and reenactment")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--clip", help="driving clip for the reenactment figure (default: a 512 px clip from "
                                       "../shared/data, else the synthetic source)")
    parser.add_argument("--frames", type=int, default=60, help="reenactment frames to time")
    parser.add_argument("--skip-reenact", action="store_true")
    args = parse_args(parser, argv)

    path, what = resolve_checkpoint(args.checkpoint, args.config)
    device = resolve_device(args.device)
    precisions = (args.precisions or ("fp32,fp16" if device.type == "cuda" else "fp32,bf16")).split(",")
    report: dict[str, object] = {"model": what, "checkpoint": str(path), "device": str(device)}
    auto = Engine.load(path, device=str(device), precision="auto", output_size=None)  # the model's size
    report["auto_precision"] = auto.precision
    report["image_size"] = auto.image_size
    prep, source = bench_prepare(auto, max(5, args.repeats // 3))
    report.update(prep)
    say(f"source preparation (detect + crop + encode): median {prep['prepare_ms_median']:.0f} ms (first call, incl. "
        f"tracker start: {prep['prepare_ms_first']:.0f} ms)   target ≤ 1000 ms")
    flops = render_flops(path, device, source)
    report["render_gflop"] = flops / 1e9
    for precision in precisions:
        engine = (auto if precision == auto.precision else
                  Engine.load(path, device=str(device), precision=precision, output_size=None))
        src = source if engine is auto else engine.prepare_crop(source.crop)
        src.image, src.transform = source.image, source.transform  # same photo for paste-back
        r = bench_render(engine, src, args.repeats, flops)
        report.update({f"{precision}.{k}": v for k, v in r.items()})
        say(f"re-render {auto.image_size} px [{precision}]: median {r['render_ms_median']:.1f} ms "
            f"({r['render_gflops_per_s']:.1f} GFLOP/s; min {r['render_ms_min']:.1f}, p90 {r['render_ms_p90']:.1f}), "
            f"with paste-back {r['render_paste_back_ms_median']:.1f} ms, export batch 4: "
            f"{r['export_ms_per_frame_batch4']:.1f} ms/frame   "
            f"target ≤ {'3 ms in fp16' if device.type == 'cuda' else '25 ms in bf16'}")
    if tracker_available():
        r = bench_detail(path, device, auto.precision, args.repeats)
        report.update({"detail_precision": auto.precision, **r})
        say(f"re-render with the face at the photo's resolution [{auto.precision}]: "
            f"{r['detail512_crop_px']} px crop {r['detail512_render_ms_median']:.1f} ms "
            f"(pasted back {r['detail512_paste_back_ms_median']:.1f} ms), {r['detail1024_crop_px']} px crop "
            f"{r['detail1024_render_ms_median']:.1f} ms (pasted back {r['detail1024_paste_back_ms_median']:.1f} ms)   "
            f"target ≤ 60 ms at 512 px")
    if not args.skip_reenact and tracker_available():
        r = bench_reenact(auto, source, find_clip(args.clip), args.frames)
        report.update(r)
        say(f"reenactment ({r['reenact_clip']}, {r['reenact_frame_size']}, {r['reenact_frames']} frames): "
            f"{r['reenact_fps']:.1f} fps incl. tracking, pipelined ({r['reenact_sequential_fps']:.1f} frame by frame; "
            f"{r['reenact_detail_fps']:.1f} with the render at the photo's resolution; decoding "
            f"{r['decode_ms_per_frame']:.1f} ms/frame apart)   target ≥ 30 fps")
    auto.close()
    emit("engine", report, args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
