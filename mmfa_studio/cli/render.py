"""``mmfa-studio render SOURCE -o OUT.png``: one still of the source under an edited pose and expression.

Also holds the helpers the other engine commands (animate, reenact, interpolate) share.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import UserError
from .options import MAX_SEED, float_in, int_in, seed

IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_OUTPUTS = (".mp4", ".mov", ".mkv", ".m4v")


# -- shared by the engine commands --------------------------------------------------------------------------
def add_engine_options(parser: argparse.ArgumentParser, output_size: bool = True) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--checkpoint", metavar="PATH",
                       help="model checkpoint (.safetensors); "
                            "default: the bundled mmfa_studio/assets/mmfa-cpu.safetensors")
    group.add_argument("--device", default="auto", help="auto (CUDA → MPS → CPU), cpu, cuda, mps (default: auto)")
    group.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"),
                       help="auto: fp16 on CUDA, bf16 on CPUs with native bf16, else fp32 (default: auto)")
    group.add_argument("--face-index", type=int_in(0, 99), default=None, metavar="N",
                       help="which face of the source photo to animate (0 = largest; default 0)")
    if output_size:
        group.add_argument("--output-size", type=int_in(8, 4096), default=512, metavar="PX",
                           help="side of the face crop written without --paste-back (default 512); above the model's "
                                "size (256) the face is also rendered at the photo's own resolution, so pasted back "
                                "it stays as sharp as the photo; the model's size is the faster path")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def add_pose_options(parser: argparse.ArgumentParser) -> None:
    from mmfa_studio.motion import MOTION_RANGES  # torch-free: parsing (and refusing) argv needs no torch

    group = parser.add_argument_group("motion (relative to the source's own pose unless --absolute)")
    for name, unit in (("yaw", "degrees, + turns the face to the image right"), ("pitch", "degrees, + tilts it up"),
                       ("roll", "degrees, + turns it clockwise"), ("scale", "factor"),
                       ("tx", "normalised: 0.1 = 5%% of the crop width to the right"), ("ty", "normalised, + is down"),
                       ("tz", "normalised, + is away from the camera")):
        low, high = MOTION_RANGES[name]
        group.add_argument(f"--{name}", type=float_in(), default=None, metavar="V", help=f"{unit} [{low:g}, {high:g}]")
    group.add_argument("--absolute", action="store_true", help="the numbers are the absolute pose, not a change")


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the engine's and the face package's input errors into one-line UserErrors (exit 2)."""
    from mmfa_studio.engine import EngineError
    from mmfa_studio.face import ImageError, NoFaceError

    try:
        yield
    except (EngineError, ImageError, NoFaceError) as exc:
        raise UserError(str(exc)) from None


def open_engine(args: argparse.Namespace):
    from mmfa_studio.engine import Engine

    with user_errors():
        return Engine.load(args.checkpoint, device=args.device, precision=args.precision,
                           output_size=getattr(args, "output_size", None))


def check_input_file(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} {p} does not exist")
    if p.is_dir():
        raise UserError(f"{what} {p} is a folder, not a file")
    return p


def check_output(path: str, suffixes: tuple[str, ...]) -> Path:
    """The output path, refused (exit 2) when its type is wrong or its folder is missing or not writable."""
    if Path(path).suffix.lower() not in suffixes:
        raise UserError(f"output {path} must end in {', '.join(suffixes)}")
    return check_writable(path, "output")


def check_writable(path: str, what: str) -> Path:
    """A file a command writes at the end, refused (exit 2) at the start when it could not be written."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{what} {p} is a folder")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{what}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UserError(f"{what} {p} is not writable")
    return p


def parse_motion(args: argparse.Namespace, expression: np.ndarray | None = None, strength: float = 1.0):
    """A validated Motion from --yaw … --tz/--absolute (unset numbers: no change, or 0/1 when absolute)."""
    from mmfa_studio.engine import Motion
    from mmfa_studio.motion import POSE_FIELDS

    values = {name: getattr(args, name) for name in POSE_FIELDS}
    motion = Motion(**{k: v for k, v in values.items() if v is not None},
                    expression=None if expression is None else tuple(float(v) for v in expression),
                    expression_strength=strength, relative=not args.absolute)
    try:
        return motion.validate()
    except ValueError as exc:
        raise UserError(str(exc)) from None


def resolve_expression(engine, spec: str, what: str, photos: bool = True, source=None) -> np.ndarray:
    """An expression given as a photo path, a comma list of numbers, 'prior' / 'prior:SEED' or 'source'.

    'source' is not resolved here (returns an empty array); callers substitute the source's own z.
    ``photos=False``: only number lists (and prior/source) are accepted. ``source``: the prepared source a photo's
    expression is for (its mouth and eyes then open as far as the photo's: ``ExpressionSpace.encode``).
    """
    from mmfa_studio.engine import parse_expression_list

    text = spec.strip()
    if text.lower() == "source":
        return np.zeros(0, dtype=np.float32)
    if text.lower() == "prior" or text.lower().startswith("prior:"):
        _, _, seed = text.partition(":")
        if not seed:
            return engine.expressions.sample(None)
        if not (seed.strip().isascii() and seed.strip().isdigit() and int(seed) <= MAX_SEED):
            raise UserError(f"{what}: 'prior:SEED' needs an integer seed in [0, {MAX_SEED}], not {seed[:24]!r}")
        return engine.expressions.sample(int(seed))
    path = Path(text)
    if photos and (path.exists() or ("," not in text and not _looks_numeric(text))):
        check_input_file(text, f"{what} photo")
        with user_errors():
            return engine.expressions.encode(path, source=source)
    try:
        z = np.asarray(parse_expression_list(text), dtype=np.float32)
    except ValueError as exc:
        raise UserError(f"{what}: {exc}") from None
    if z.shape[0] != engine.latent_dim:
        raise UserError(f"{what} has {z.shape[0]} values; this model's expression latent has {engine.latent_dim}")
    return z


def parse_controls(specs: list[str]) -> dict[str, float]:
    """``["mouth_open=0.8", …]`` → {name: value}; a malformed or non-finite one is a UserError."""
    values: dict[str, float] = {}
    for spec in specs:
        name, sep, text = spec.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not sep or not name or not np.isfinite(value):
            raise UserError(f"--control {spec!r}: write NAME=VALUE with a finite number, e.g. mouth_open=0.8")
        values[name.strip()] = value
    return values


def apply_controls(engine, source, z: np.ndarray | None, strength: float, specs: list[str]) -> np.ndarray:
    """The latent with the named controls of ``specs`` added to the (strength-mixed) expression ``z`` (None:
    the source's own)."""
    values = parse_controls(specs)
    controls = engine.expressions.controls
    if controls is None:
        raise UserError("this model has no named expression controls "
                        "(a checkpoint made by `mmfa-studio fit-expression` has)")
    for name, value in values.items():
        if name not in controls.directions:
            raise UserError(f"unknown --control {name!r}; this model has: {', '.join(controls.directions)}")
        low, high = controls.range(name)
        if not low - 1.0 <= value <= high + 1.0:
            raise UserError(f"--control {name}={value:g} is out of range [{low - 1:g}, {high + 1:g}]")
    own = np.asarray(source.expression, dtype=np.float64)
    base = own if z is None else own + strength * (np.asarray(z, dtype=np.float64) - own)
    return engine.expressions.with_controls(base, values, source)


def _looks_numeric(text: str) -> bool:
    return all(c in "0123456789+-.,;eE " for c in text) and any(c.isdigit() for c in text)


def prepare(engine, source: str, face_index: int | None):
    check_input_file(source, "source photo")
    with user_errors():
        return engine.prepare_source(Path(source), face_index=face_index)


def write_image(path: Path, rgb: np.ndarray) -> None:
    import cv2

    from mmfa_studio.atomic import write_bytes_atomic

    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, data = cv2.imencode(path.suffix.lower(), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise UserError(f"cannot encode an image as {path.suffix}")
    try:
        write_bytes_atomic(path, data.tobytes())
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def engine_summary(engine) -> dict[str, Any]:
    return {"device": engine.device, "precision": engine.precision, "image_size": engine.image_size,
            "output_size": engine.output_size,
            "checkpoint": str(engine.info.path) if engine.info else None}


def emit(args: argparse.Namespace, summary: dict[str, Any], line: str) -> None:
    """The JSON summary (--json) or one human line, on stdout."""
    if args.json:
        json.dump(summary, sys.stdout, indent=2, default=_json_default)
        sys.stdout.write("\n")
    else:
        print(line)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def pose_dict(motion) -> dict[str, float]:
    return {"yaw": motion.yaw, "pitch": motion.pitch, "roll": motion.roll, "scale": motion.scale,
            "translation": [float(v) for v in motion.translation]}


# -- the command ----------------------------------------------------------------------------------------------
def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "render", help="render one still of a portrait under a new head pose and expression",
        description="Render SOURCE under an edited head pose and expression and save it as an image. "
                    "Numbers are changes to the source's own pose unless --absolute.",
        epilog="example: mmfa-studio render me.jpg -o out.png --yaw 20 --pitch -5 "
               "--expression-from smile.jpg --paste-back",
    )
    parser.add_argument("source", metavar="SOURCE", help="portrait photo")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help=f"output image ({', '.join(IMAGE_OUTPUTS)})")
    add_pose_options(parser)
    expr = parser.add_argument_group("expression (default: the source's own)")
    which = expr.add_mutually_exclusive_group()
    which.add_argument("--expression", metavar="Z1,Z2,…",
                       help="the expression latent z as comma-separated numbers "
                            "(write --expression=-0.5,1,… when it starts with a minus)")
    which.add_argument("--expression-from", metavar="PHOTO", help="take the expression of the face in PHOTO")
    which.add_argument("--expression-prior", type=seed, metavar="SEED",
                       help="a random expression from the prior (seeded)")
    expr.add_argument("--expression-strength", type=float_in(), default=1.0, metavar="S",
                      help="0 = the source's expression, 1 = the given one, >1 exaggerates (default 1)")
    expr.add_argument("--control", action="append", default=[], metavar="NAME=VALUE",
                      help="a named expression control on top of the expression, e.g. mouth_open=0.8 or "
                           "blink_left=1 (repeatable; `mmfa-studio controls` lists them)")
    parser.add_argument("--paste-back", action="store_true", help="paste the rendered face back into the full photo")
    add_engine_options(parser)
    parser.set_defaults(func=run, writes=("output",),
                        reads={"source": "source photo", "expression_from": "expression photo",
                               "checkpoint": "checkpoint"})
    return parser


def run(args: argparse.Namespace) -> int:
    output = check_output(args.output, IMAGE_OUTPUTS)
    check_input_file(args.source, "source photo")
    if args.expression_from:
        check_input_file(args.expression_from, "expression photo")
    engine = open_engine(args)
    try:
        source = prepare(engine, args.source, args.face_index)
        z = None
        if args.expression is not None:
            z = resolve_expression(engine, args.expression, "--expression", photos=False)
        elif args.expression_from is not None:
            z = resolve_expression(engine, args.expression_from, "--expression-from", source=source)
        elif args.expression_prior is not None:
            z = engine.expressions.sample(args.expression_prior)
        if args.control:
            z = apply_controls(engine, source, z, args.expression_strength, args.control)
        motion = parse_motion(args, z, 1.0 if args.control else args.expression_strength)
        start = time.perf_counter()
        with user_errors():
            frame = engine.render(source, motion, paste_back=args.paste_back)
        render_ms = (time.perf_counter() - start) * 1000
        image = frame.full if args.paste_back else frame.output
        write_image(output, image)
    finally:
        engine.close()
    summary = {"output": str(output), "width": image.shape[1], "height": image.shape[0],
               "render_ms": round(render_ms, 1), "source_pose": pose_dict(source.motion),
               "source_expression": source.expression, "motion": motion.to_dict(), **engine_summary(engine)}
    emit(args, summary, f"wrote {output} ({image.shape[1]}×{image.shape[0]}, rendered in {render_ms:.0f} ms "
                        f"on {engine.device}/{engine.precision})")
    return 0
