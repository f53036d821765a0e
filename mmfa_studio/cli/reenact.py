"""``mmfa-studio reenact SOURCE DRIVING -o OUT.mp4``: animate a portrait with the face in a driving video.

The output keeps the driving video's frame rate exactly (29.97 = 30000/1001 included) and its audio. Frames
where no face is found repeat the last rendered frame. Relative mode (default) applies the driving face's
changes since its first frame (or --reference-frame) to the source; absolute mode copies its pose and expression.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

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
        "reenact", help="drive a portrait with the face in a video (keeps fps and audio)",
        description=__doc__.split("\n", 2)[2] if __doc__ else None,
        epilog="example: mmfa-studio reenact me.jpg talk.mp4 -o me_talking.mp4 --paste-back",
    )
    parser.add_argument("source", metavar="SOURCE", help="portrait photo")
    parser.add_argument("driving", metavar="DRIVING", help="driving video (or an image folder)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help=f"output video ({', '.join(VIDEO_OUTPUTS)})")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--relative", dest="mode", action="store_const", const="relative",
                      help="apply the driving face's changes since the reference frame (default)")
    mode.add_argument("--absolute", dest="mode", action="store_const", const="absolute",
                      help="copy the driving face's pose and expression as they are")
    parser.set_defaults(mode="relative")
    parser.add_argument("--transfer", choices=("both", "pose", "expression"), default="both",
                        help="what to take from the driving face (default both)")
    parser.add_argument("--reference-frame", type=int_in(0, 10_000_000), default=None, metavar="N",
                        help="driving frame used as the neutral reference (relative mode only; default 0)")
    parser.add_argument("--pose-from", choices=("tracker", "model"), default="tracker",
                        help="relative mode: head turns, shift and zoom measured by the face tracker (default) or by "
                        "the model's motion encoder, which reads few of them in the bundled model")
    parser.add_argument("--expression-from", choices=("tracker", "model"), default="tracker",
                        help="relative mode: the driver's mouth, eye and brow movement moves the source's keypoints, "
                        "with the model's expression latent (tracker, default), or the latent alone (model), which "
                        "carries little in the bundled model")
    parser.add_argument("--hold-position", action="store_true",
                        help="keep the source's head where it is in the frame (turns and expression still follow): "
                        "for drivers who move around, whose shifts tear the portrait's neck and collar")
    parser.add_argument("--smoothing", type=float_in(0, 1), default=0.5, metavar="S",
                        help="temporal smoothing, 0 (off) to 1 (strong) (default 0.5)")
    parser.add_argument("--paste-back", action="store_true", help="paste the face back into the full source photo")
    parser.add_argument("--no-audio", action="store_true", help="do not copy the driving video's audio")
    parser.add_argument("--max-frames", type=int_in(1, 10_000_000), default=None, metavar="N",
                        help="stop after N frames")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_engine_options(parser)
    parser.set_defaults(func=run, writes=("output",),
                        reads={"source": "source photo", "driving": "driving video", "checkpoint": "checkpoint"})
    return parser


def run(args: argparse.Namespace) -> int:
    from mmfa_studio.engine import Reenactor, ReenactSettings, VideoExporter, open_frame_source, probe_video

    output = check_output(args.output, VIDEO_OUTPUTS)
    check_input_file(args.source, "source photo")
    driving_path = Path(args.driving)
    if not driving_path.exists():
        raise UserError(f"driving video {driving_path} does not exist")
    if args.reference_frame is not None and args.mode == "absolute":
        raise UserError("--reference-frame applies to relative mode only (--absolute copies each frame as it is)")
    if args.reference_frame is None:
        args.reference_frame = 0
    with user_errors():
        frames = open_frame_source(driving_path)
    try:  # the driving video's reader is closed on every way out, including a bad checkpoint or source photo
        has_audio = False
        if driving_path.is_file():
            with user_errors():
                has_audio = probe_video(driving_path).has_audio and not args.no_audio
        engine = open_engine(args)
    except BaseException:
        frames.close()
        raise
    found = missing = 0
    start = time.perf_counter()
    try:
        source = prepare(engine, args.source, args.face_index)
        total = (frames.frame_count if args.max_frames is None
                 else min(args.max_frames, frames.frame_count or args.max_frames))
        reference_needed = args.mode == "relative" and args.reference_frame > 0
        settings = ReenactSettings(mode=args.mode, transfer=args.transfer, smoothing=args.smoothing,
                                   paste_back=args.paste_back, pose_from=args.pose_from,
                                   expression_from=args.expression_from, follow_position=not args.hold_position)
        with user_errors(), frames, Reenactor(engine, source, settings, fps=frames.fps) as reenactor:
            if reference_needed:
                reenactor.set_reference(_frame_at(driving_path, args.reference_frame))
            with VideoExporter(output, frames.fps_fraction, audio_from=driving_path if has_audio else None,
                               progress=not (args.quiet or args.json), total=total, description="reenact") as video:
                driving = frames if args.max_frames is None else itertools.islice(frames, args.max_frames)
                for result in reenactor.process_stream(driving):  # tracks frame n + 1 while n renders
                    found += result.face_found
                    missing += not result.face_found
                    video.write(result.frame.full if args.paste_back else result.frame.output)
                if found == 0:
                    raise UserError(f"no face found in any frame of {driving_path}")
            note = getattr(frames, "shortfall_note", lambda: None)()
            if note:  # exit 0 (the frames there are rendered), but not quietly shorter
                print(f"mmfa-studio reenact: warning: {note}", file=sys.stderr)
    finally:
        frames.close()
        engine.close()
    seconds = time.perf_counter() - start
    written = found + missing
    size = video.size or (0, 0)
    summary = {"output": str(output), "frames": written, "frames_without_face": missing,
               "fps": float(frames.fps_fraction), "fps_exact": str(frames.fps_fraction), "audio": has_audio,
               "width": size[0], "height": size[1], "mode": args.mode, "transfer": args.transfer,
               "hold_position": args.hold_position,
               "seconds": round(seconds, 2), "processing_fps": round(written / max(seconds, 1e-9), 2),
               **engine_summary(engine)}
    note = f", {missing} without a face" if missing else ""
    emit(args, summary, f"wrote {output} ({written} frames at {float(frames.fps_fraction):.3f} fps"
                        f"{', with audio' if has_audio else ''}{note}) in {seconds:.1f} s")
    return 0


def _frame_at(path, index: int):
    """Frame ``index`` of the driving source (for --reference-frame)."""
    from mmfa_studio.engine import open_frame_source

    with open_frame_source(path) as frames:
        for i, frame in enumerate(frames):
            if i == index:
                return frame
    raise UserError(f"--reference-frame {index}: the driving video has only {i + 1} frames")
