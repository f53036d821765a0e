"""Per-stage model timings: ``mmfa-studio bench``.

Median milliseconds of each stage of a re-render from a cached source (source encoding, keypoint composition,
dense motion, warping, generator, total) for both variants, at batch 1, in fp32 and in reduced precision
(bf16 autocast + channels_last on CPU, fp16 autocast on CUDA).
"""

from __future__ import annotations

import contextlib
import platform
import statistics
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable

import torch

from .model import MMFA, ModelConfig, load_model_config

STAGES = ("source_encoding", "keypoint_composition", "dense_motion", "warping", "generator", "total_rerender")


@dataclass
class StageTimings:
    variant: str
    precision: str
    device: str
    image_size: int
    parameters_m: float
    median_ms: dict[str, float]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_ms(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bench_model(cfg: ModelConfig, device: torch.device, reduced: bool, repeats: int = 20, warmup: int = 3) -> StageTimings:
    torch.manual_seed(0)
    model = MMFA(cfg).to(device).eval()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    channels_last = reduced and device.type == "cpu" and cfg.variant == "hybrid"  # 3D convs got slower with it
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if reduced else contextlib.nullcontext
    image = torch.rand(1, 3, cfg.image_size, cfg.image_size, device=device)
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    timings: dict[str, float] = {}
    with torch.inference_mode(), autocast():
        source = model.encode_source(image)
        target = source.own_motion.with_changes(yaw=source.motion.yaw + 15.0)
        src, kp_d, motion = model.estimate_motion(source, target)
        features, image_flow = model.warp_features(src, motion)
        timings["source_encoding"] = _median_ms(lambda: model.encode_source(image), device, max(5, repeats // 4), 1)
        timings["keypoint_composition"] = _median_ms(lambda: model.pose_keypoints(source.canonical, target), device, repeats, warmup)
        jac = model.pose_keypoints(source.canonical, target)[1]
        driver = src.image if cfg.variant == "hybrid" else src.appearance
        jacobian = src.jacobian @ torch.linalg.inv(jac.float())
        timings["dense_motion"] = _median_ms(lambda: model.dense_motion(driver, src.keypoints, kp_d, jacobian), device, repeats, warmup)
        timings["warping"] = _median_ms(lambda: model.warp_features(src, motion), device, repeats, warmup)
        timings["generator"] = _median_ms(lambda: model.generator(features, src.image, image_flow, all_scales=False), device, repeats, warmup)
        timings["total_rerender"] = _median_ms(lambda: model.render(source, target, all_scales=False), device, repeats, warmup)
    return StageTimings(
        variant=cfg.variant,
        precision=("fp16" if device.type == "cuda" else "bf16" + ("+channels_last" if channels_last else "")) if reduced else "fp32",
        device=describe_device(device),
        image_size=cfg.image_size,
        parameters_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        median_ms={k: round(v, 2) for k, v in timings.items()},
    )


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} ×{torch.get_num_threads()} threads"


def run_benchmarks(config: str = "cpu", device: torch.device = torch.device("cpu"),
                   variants: tuple[str, ...] = ("hybrid", "volumetric"),
                   precisions: tuple[str, ...] = ("fp32", "reduced"), repeats: int = 20) -> list[StageTimings]:
    """``device``: as :func:`mmfa_studio.engine.resolve_device` gives it."""
    base = load_model_config(config)
    return [bench_model(replace(base, variant=v), device, reduced=(p == "reduced"), repeats=repeats)
            for v in variants for p in precisions]


def format_table(results: list[StageTimings]) -> str:
    head = f"{'variant':<11}{'precision':<20}" + "".join(f"{s:>22}" for s in STAGES)
    lines = [f"device: {results[0].device}, {results[0].image_size} px, batch 1, median ms", head]
    for r in results:
        lines.append(f"{r.variant:<11}{r.precision:<20}" + "".join(f"{r.median_ms[s]:>22.2f}" for s in STAGES))
    return "\n".join(lines)


def results_json(results: list[StageTimings]) -> list[dict]:
    return [asdict(r) for r in results]
