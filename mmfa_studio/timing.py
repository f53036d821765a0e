"""Timing and FLOP counting, and the per-stage model timings of ``mmfa-studio bench``.

The stage timings live in the package (not in the checkout's ``benchmarks/``) because ``mmfa-studio bench`` is a
documented command of the installed tool. They time each stage of a re-render from a cached source (source
encoding, keypoint composition, dense motion, warping, generator, total) for both variants at batch 1, in fp32
and in reduced precision (bf16 autocast + channels_last on CPU, fp16 autocast on CUDA), each beside the
GFLOP/s it achieves: the stage's FLOPs (counted once by ``torch.utils.flop_counter``, which counts matrix
products and convolutions, not sampling or element-wise work) over its median time.
"""

from __future__ import annotations

import contextlib
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch

from .model import MMFA, ModelConfig, load_model_config

STAGES = ("source_encoding", "keypoint_composition", "dense_motion", "warping", "generator", "total_rerender")
# Fields that only the hybrid variant takes (ModelConfig refuses them on a volumetric model).
HYBRID_ONLY = {"head_region_spread": 0.0, "flow_smoothing": 0.0, "anchor_flow": 0.0, "anchor_latent_dim": 0,
               "generator_stretch": False, "closing_warp": False}


@dataclass(frozen=True)
class Timing:
    """Wall-clock milliseconds of repeated calls."""

    median_ms: float
    p90_ms: float
    min_ms: float
    calls: int


def time_calls(fn: Callable[[int], object], repeats: int, warmup: int = 3,
               sync: Callable[[], None] = lambda: None) -> Timing:
    """Time ``fn(i)`` (``i`` counts every call, warm-up included, so each call can ask for new work)."""
    for i in range(warmup):
        fn(i)
    sync()
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(warmup + i)
        sync()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return Timing(median_ms=statistics.median(times), p90_ms=times[int(0.9 * (len(times) - 1))], min_ms=times[0],
                  calls=repeats)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (matrix products and convolutions; run once, under no autocast change)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def gflops_per_s(flops: int, ms: float) -> float:
    return round(flops / (ms * 1e6), 2) if ms > 0 else float("nan")


def config_for_variant(base: ModelConfig, variant: str) -> ModelConfig:
    """``base``'s sizes with ``variant``'s motion; the hybrid-only additions are dropped for volumetric."""
    return replace(base, variant=variant, **(HYBRID_ONLY if variant != "hybrid" else {}))


@dataclass
class StageTimings:
    variant: str
    precision: str
    device: str
    image_size: int
    parameters_m: float
    median_ms: dict[str, float]
    gflops: dict[str, float]  # FLOPs of one call, in GFLOP
    gflops_per_s: dict[str, float]


def _sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else lambda: None


def _stages(model: MMFA, image: torch.Tensor, repeats: int) -> dict[str, tuple[Callable[[], object], int]]:
    """Each stage of a re-render as a call on inputs computed once, with how many times to time it."""
    source = model.encode_source(image)
    target = source.own_motion.with_changes(yaw=source.motion.yaw + 15.0)
    src, kp_d, motion = model.estimate_motion(source, target)
    features, image_flow = model.warp_features(src, motion)
    jac = model.pose_keypoints(source.canonical, target)[1]
    driver = src.image if model.cfg.variant == "hybrid" else src.appearance
    jacobian = src.jacobian @ torch.linalg.inv(jac.float())
    return {
        "source_encoding": (lambda: model.encode_source(image), max(5, repeats // 4)),
        "keypoint_composition": (lambda: model.pose_keypoints(source.canonical, target), repeats),
        "dense_motion": (lambda: model.dense_motion(driver, src.keypoints, kp_d, jacobian), repeats),
        "warping": (lambda: model.warp_features(src, motion), repeats),
        "generator": (lambda: model.generator(features, src.image, image_flow, all_scales=False), repeats),
        "total_rerender": (lambda: model.render(source, target, all_scales=False), repeats),
    }


def bench_model(cfg: ModelConfig, device: torch.device, reduced: bool, repeats: int = 20,
                warmup: int = 3) -> StageTimings:
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
    with torch.inference_mode():
        # FLOPs are counted once, in fp32: the arithmetic is the same in every precision, and under autocast
        # the counter's dispatch met mixed-dtype matrix products that autocast alone would have cast.
        flops = {name: count_flops(fn) for name, (fn, _) in _stages(model, image, repeats).items()}
        with autocast():
            stages = _stages(model, image, repeats)
            timings = {name: time_calls(lambda _i, fn=fn: fn(), n, 1 if name == "source_encoding" else warmup,
                                        _sync(device)).median_ms for name, (fn, n) in stages.items()}
    reduced_name = "fp16" if device.type == "cuda" else "bf16" + ("+channels_last" if channels_last else "")
    return StageTimings(
        variant=cfg.variant,
        precision=reduced_name if reduced else "fp32",
        device=describe_device(device),
        image_size=cfg.image_size,
        parameters_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        median_ms={k: round(v, 2) for k, v in timings.items()},
        gflops={k: round(v / 1e9, 3) for k, v in flops.items()},
        gflops_per_s={k: gflops_per_s(flops[k], timings[k]) for k in STAGES},
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
    return [bench_model(config_for_variant(base, v), device, reduced=(p == "reduced"), repeats=repeats)
            for v in variants for p in precisions]


def format_table(results: list[StageTimings]) -> str:
    head = f"{'variant':<11}{'precision':<20}" + "".join(f"{s:>22}" for s in STAGES)
    lines = [f"device: {results[0].device}, {results[0].image_size} px, batch 1, median ms (GFLOP/s)", head]
    for r in results:
        cells = "".join(f"{f'{r.median_ms[s]:.2f} ({r.gflops_per_s[s]:.1f})':>22}" for s in STAGES)
        lines.append(f"{r.variant:<11}{r.precision:<20}" + cells)
    return "\n".join(lines)


def results_json(results: list[StageTimings]) -> list[dict]:
    return [asdict(r) for r in results]
