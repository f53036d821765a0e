"""``mmfa-studio interpolate SOURCE --from A --to B --frames N -o OUT.mp4``: morph the source's expression.

A and B are each a face photo (its expression is encoded), a comma-separated latent z (``--from=-0.3,1.2,…``
when it starts with a minus), ``prior`` / ``prior:SEED`` (a sample from the expression prior) or ``source``
(the source's own expression). The latents are interpolated linearly or spherically (--mode slerp) over N
frames; the head pose can be edited for the whole clip with the usual pose options.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .options import float_in, int_in
from .render import (
    VIDEO_OUTPUTS,
    add_engine_options,
    add_pose_options,
    check_input_file,
    check_output,
    emit,
    engine_summary,
    open_engine,
    parse_motion,
    prepare,
    resolve_expression,
    user_errors,
)


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "interpolate", help="morph a portrait's expression between two expressions, to a video",
        description=__doc__.split("\n", 2)[2] if __doc__ else None,
        epilog="example: mmfa-studio interpolate me.jpg --from source --to smile.jpg --frames 50 -o morph.mp4",
    )
    parser.add_argument("source", metavar="SOURCE", help="portrait photo")
    parser.add_argument("--from", dest="start", required=True, metavar="A",
                        help="start expression (photo | z list | prior[:SEED] | source)")
    parser.add_argument("--to", dest="end", required=True, metavar="B",
                        help="end expression (photo | z list | prior[:SEED] | source)")
    parser.add_argument("--frames", type=int_in(2, 10_000), required=True, metavar="N",
                        help="number of frames (2-10000), both ends included")
    parser.add_argument("--mode", choices=("linear", "slerp"), default="linear",
                        help="latent interpolation (default linear)")
    parser.add_argument("--fps", type=float_in(1, 240), default=25.0, help="frame rate (default 25)")
    parser.add_argument("--paste-back", action="store_true", help="paste the face back into the full photo")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help=f"output video ({', '.join(VIDEO_OUTPUTS)})")
    add_pose_options(parser)
    add_engine_options(parser)
    parser.set_defaults(func=run, writes=("output",),
                        reads={"source": "source photo", "start": "--from photo", "end": "--to photo",
                               "checkpoint": "checkpoint"})
    return parser


def run(args: argparse.Namespace) -> int:
    from mmfa_studio.engine import VideoExporter

    output = check_output(args.output, VIDEO_OUTPUTS)
    check_input_file(args.source, "source photo")
    parse_motion(args)  # refuse bad pose values before loading anything
    engine = open_engine(args)
    try:
        source = prepare(engine, args.source, args.face_index)
        ends = []
        for spec, what in ((args.start, "--from"), (args.end, "--to")):
            z = resolve_expression(engine, spec, what, source=source)
            ends.append(source.expression if z.size == 0 else z)
        ts = np.linspace(0.0, 1.0, args.frames)
        latents = engine.expressions.interpolate(ends[0], ends[1], ts, mode=args.mode)
        motions = [parse_motion(args, z) for z in latents]
        start = time.perf_counter()
        with user_errors(), VideoExporter(output, args.fps, progress=not (args.quiet or args.json), total=len(motions),
                                          description="interpolate") as video:
            for i in range(0, len(motions), 4):
                for frame in engine.render_batch(source, motions[i:i + 4], paste_back=args.paste_back, batch_size=4):
                    video.write(frame.full if args.paste_back else frame.output)
        seconds = time.perf_counter() - start
    finally:
        engine.close()
    size = video.size or (0, 0)
    summary = {"output": str(output), "frames": video.frames_written, "fps": args.fps, "mode": args.mode,
               "from": ends[0], "to": ends[1], "width": size[0], "height": size[1], "seconds": round(seconds, 2),
               **engine_summary(engine)}
    emit(args, summary, f"wrote {output} ({video.frames_written} frames, {args.mode}) in {seconds:.1f} s")
    return 0
