"""``mmfa-studio live PHOTO --camera 0 --virtual-camera``: drive a portrait live into a virtual camera, headless.

The portrait follows the face in a camera (or, with --driving, a recorded video played in real time, late
frames dropped as a camera would) and each reenacted frame goes to a virtual camera (v4l2loopback on Linux,
the OBS camera on Windows and macOS; needs the extra: pip install 'mmfa-studio[virtual-camera]') at the
driver's rate, for video calls and streams. Ctrl+C stops.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import UserError
from .render import (
    add_engine_options,
    check_input_file,
    emit,
    engine_summary,
    open_engine,
    prepare,
    user_errors,
)


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "live", help="drive a portrait live from a camera into a virtual camera (headless)",
        description=__doc__.split("\n", 2)[2] if __doc__ else None,
        epilog="example: mmfa-studio live me.jpg --camera 0 --virtual-camera",
    )
    parser.add_argument("source", metavar="PHOTO", help="portrait photo")
    driver = parser.add_mutually_exclusive_group()
    driver.add_argument("--camera", type=int, default=None, metavar="N",
                        help="camera that drives the portrait (default 0)")
    driver.add_argument("--driving", metavar="FILE",
                        help="a recorded driver instead of a camera (video file, image folder or 'synthetic'), "
                        "played in real time")
    parser.add_argument("--loop", action="store_true", help="with --driving: start again at its end")
    parser.add_argument("--virtual-camera", action="store_true",
                        help="send the frames to a virtual camera (the output of live)")
    parser.add_argument("--camera-size", metavar="WxH", default=None,
                        help="the virtual camera's frame size, e.g. 1280x720 (frames are scaled to fit and "
                        "letterboxed; default: the rendered frame's size)")
    parser.add_argument("--hold-position", action="store_true",
                        help="keep the portrait's head where it is in the frame (turns and expression still follow)")
    parser.add_argument("--smoothing", type=float, default=0.5, metavar="S",
                        help="temporal smoothing, 0 (off) to 1 (strong) (default 0.5)")
    parser.add_argument("--paste-back", action="store_true", help="send the whole photo with the face pasted back")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after sending N frames")
    parser.add_argument("--quiet", action="store_true", help="no status line on stderr")
    add_engine_options(parser, output_size=False)  # live: the model's size, for speed
    parser.set_defaults(func=run)
    return parser


def parse_size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if (not sep or not width.isdigit() or not height.isdigit()
            or not (16 <= int(width) <= 7680 and 16 <= int(height) <= 4320)):
        raise UserError(f"--camera-size {text!r} must be WIDTHxHEIGHT, e.g. 1280x720 (16 to 7680 × 16 to 4320)")
    return int(width), int(height)


def run(args: argparse.Namespace) -> int:
    from mmfa_studio.engine import open_frame_source
    from mmfa_studio.engine.virtual_camera import open_virtual_camera

    if not args.virtual_camera:
        raise UserError("live needs an output: add --virtual-camera")
    if not 0.0 <= args.smoothing <= 1.0:
        raise UserError(f"--smoothing {args.smoothing:g} is out of range [0, 1]")
    if args.max_frames is not None and args.max_frames < 1:
        raise UserError("--max-frames must be at least 1")
    if args.loop and args.driving is None:
        raise UserError("--loop applies to --driving only (a camera does not end)")
    check_input_file(args.source, "source photo")
    size = _frame_size(args)
    with user_errors():  # a file is paced to real time (a camera paces itself)
        frames = open_frame_source(args.driving if args.driving is not None else (args.camera or 0), pace=True,
                                   loop=args.loop)
    sent = missing = 0
    try:
        with user_errors():  # before the model loads: no backend here is one line and exit 2 at once
            sink = open_virtual_camera(*size, frames.fps)
        with sink:
            engine = open_engine(args)
            try:
                source = prepare(engine, args.source, args.face_index)
                with user_errors(), _reenactor(engine, source, args, frames.fps) as reenactor:
                    if not (args.quiet or args.json):
                        print(f"live: sending {sink.width}×{sink.height} at {sink.fps:g} fps to the virtual camera "
                              f"{sink.device or ''}(Ctrl+C stops)", file=sys.stderr)
                    start = time.perf_counter()
                    try:
                        for result in reenactor.process_stream(frames):  # tracks frame n + 1 while n renders
                            missing += not result.face_found
                            sink.send(result.frame.full if args.paste_back else result.frame.crop)
                            sent += 1
                            if args.max_frames is not None and sent >= args.max_frames:
                                break
                    except KeyboardInterrupt:  # how a live session ends: report it like any other end
                        pass
                    seconds = time.perf_counter() - start
            finally:
                engine.close()
    finally:
        frames.close()
    summary = {"frames": sent, "frames_without_face": missing, "driver": frames.name, "driver_fps": frames.fps,
               "width": sink.width, "height": sink.height, "camera_fps": sink.fps, "camera_device": sink.device,
               "seconds": round(seconds, 2), "sent_fps": round(sent / max(seconds, 1e-9), 2), **engine_summary(engine)}
    note = f", {missing} without a face" if missing else ""
    emit(args, summary,
         f"sent {sent} frames ({sink.width}×{sink.height}) to the virtual camera in {seconds:.1f} s{note}")
    return 0


def _frame_size(args: argparse.Namespace) -> tuple[int, int]:
    """(width, height) of the virtual camera, known before the model loads: --camera-size, else the frames'
    size: the photo's with --paste-back, the model's crop (its config's image_size, which Engine renders) else."""
    if args.camera_size:
        return parse_size(args.camera_size)
    if args.paste_back:
        from mmfa_studio.face import ImageError, load_image

        try:
            h, w = load_image(args.source).shape[:2]
        except ImageError as exc:
            raise UserError(str(exc)) from None
        return w, h
    from mmfa_studio.checkpoint import BUNDLED_MODEL, CheckpointError, read_info

    try:
        side = read_info(args.checkpoint or BUNDLED_MODEL).config.image_size
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    return side, side


def _reenactor(engine, source, args: argparse.Namespace, fps: float):
    """The one place live builds its Reenactor (its constructor is about to take a settings object)."""
    from mmfa_studio.engine import Reenactor

    # The render at the photo's resolution only where it is shown: pasted back (the crop goes out as it is).
    return Reenactor(engine, source, smoothing=args.smoothing or None, paste_back=args.paste_back, fps=fps,
                     follow_position=not args.hold_position, detail=args.paste_back)
