"""``mmfa-studio animate SOURCE KEYFRAMES.json -o OUT.mp4``: render a keyframed animation to a video.

Keyframe file (JSON)::

    {"fps": 25, "duration": 4.0, "interpolation": "linear",
     "keyframes": [{"time": 0.0, "motion": {}},
                   {"time": 1.0, "motion": {"yaw": 20, "pitch": -5}},
                   {"time": 2.5, "motion": {"yaw": -20, "roll": 5, "expression": [0.4, -1.1, ...]}},
                   {"time": 4.0, "motion": {}}]}

or just the list under "keyframes". A motion takes the fields of ``mmfa_studio.engine.Motion``: yaw, pitch, roll
(degrees), scale, tx, ty, tz, expression (the latent z, or null for the source's own), expression_strength,
relative (default true: changes to the source's pose). Frames between keyframes interpolate linearly
(expression latents linearly or, with "interpolation": "slerp", spherically); fps defaults to 25, duration to
the last keyframe's time.
"""

from __future__ import annotations

import argparse
import time

from . import UserError
from .options import float_in, int_in
from .render import (
    VIDEO_OUTPUTS,
    add_engine_options,
    check_input_file,
    check_output,
    emit,
    engine_summary,
    open_engine,
    prepare,
    user_errors,
)


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "animate", help="render a keyframed pose/expression animation of a portrait to a video",
        description=__doc__.split("\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="SOURCE", help="portrait photo")
    parser.add_argument("keyframes", metavar="KEYFRAMES.json", help="keyframe file (format above)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help=f"output video ({', '.join(VIDEO_OUTPUTS)})")
    parser.add_argument("--fps", type=float_in(1, 240), default=None,
                        help="frame rate (overrides the file's; default 25)")
    parser.add_argument("--paste-back", action="store_true", help="paste the face back into the full photo")
    parser.add_argument("--batch-size", type=int_in(1, 64), default=4, metavar="N",
                        help="frames per model call (default 4)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_engine_options(parser)
    parser.set_defaults(func=run, writes=("output",),
                        reads={"source": "source photo", "keyframes": "keyframe file", "checkpoint": "checkpoint"})
    return parser


def load_animation(path: str, fps: float | None, latent_dim: int | None = None):
    """The keyframe file, checked (``latent_dim``: also each expression's length); read before the model loads,
    so a bad file is refused at once."""
    from dataclasses import replace

    from mmfa_studio.motion import KeyframeAnimation

    check_input_file(path, "keyframe file")
    try:
        animation = KeyframeAnimation.load(path)
        if fps is not None:
            animation = replace(animation, fps=fps)
        return animation.validate(latent_dim)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    output = check_output(args.output, VIDEO_OUTPUTS)
    check_input_file(args.source, "source photo")
    check_input_file(args.keyframes, "keyframe file")
    animation = load_animation(args.keyframes, args.fps)  # before torch is imported: a bad file is refused at once
    from mmfa_studio.engine import VideoExporter

    engine = open_engine(args)
    try:
        try:
            animation.validate(engine.latent_dim)
        except ValueError as exc:
            raise UserError(f"{args.keyframes}: {exc}") from None
        source = prepare(engine, args.source, args.face_index)
        motions = animation.motions()
        start = time.perf_counter()
        with user_errors(), VideoExporter(output, animation.fps, progress=not (args.quiet or args.json),
                                          total=len(motions), description="animate") as video:
            for i in range(0, len(motions), args.batch_size):
                for frame in engine.render_batch(source, motions[i:i + args.batch_size], paste_back=args.paste_back,
                                                 batch_size=args.batch_size):
                    video.write(frame.full if args.paste_back else frame.output)
        seconds = time.perf_counter() - start
    finally:
        engine.close()
    size = video.size or (0, 0)
    summary = {"output": str(output), "frames": video.frames_written, "fps": animation.fps,
               "duration": video.frames_written / animation.fps, "width": size[0], "height": size[1],
               "seconds": round(seconds, 2), "render_fps": round(video.frames_written / max(seconds, 1e-9), 2),
               **engine_summary(engine)}
    emit(args, summary, f"wrote {output} ({video.frames_written} frames at {animation.fps:g} fps, "
                        f"{size[0]}×{size[1]}) in {seconds:.1f} s")
    return 0
