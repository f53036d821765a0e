"""Strips of edits on validation people, to look at: per clip, the source (its first frame with a face) and the
same source under large pose edits and, for a model with them, each named expression control.

    .venv/bin/python experiments/edit_strips.py VAL --checkpoint A [--checkpoint B …] --out strips.png [--clips 4]

One block of rows per checkpoint (same sources, same edits, in the order given), so models compare side by side.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from mmfa_studio.engine import Engine, Motion
from mmfa_studio.eval.evaluate import crop_clip, list_videos, read_spread_frames

POSES = (("yaw -30", Motion(yaw=-30)), ("yaw +30", Motion(yaw=30)), ("pitch -20", Motion(pitch=-20)),
         ("pitch +20", Motion(pitch=20)))
CONTROLS = (("mouth_open", 1.0), ("smile", 1.0), ("blink", 1.0), ("blink_left", 1.0), ("brows", 1.0),
            ("brows", -1.0))


def tile(image: np.ndarray, text: str, size: int = 192) -> np.ndarray:
    small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    band = np.full((22, size, 3), 255, np.uint8)
    cv2.putText(band, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
    return np.concatenate([small, band], axis=0)


def rows_for(checkpoint: str, sources: list[np.ndarray]) -> list[np.ndarray]:
    engine = Engine.load(checkpoint, device="cpu", precision="fp32", output_size=None)  # the model's crops only
    name = Path(checkpoint).stem
    rows = []
    try:
        for crop in sources:
            source = engine.prepare_crop(crop, name="source")
            tiles = [tile(crop, name[:24])]
            tiles += [tile(engine.render(source, motion).crop, label) for label, motion in POSES]
            controls = engine.expressions.controls
            for control, value in CONTROLS:
                if controls is None or control not in controls.directions:
                    tiles.append(tile(np.full_like(crop, 255), f"no {control}"))
                    continue
                z = engine.expressions.with_controls(source.expression, {control: value}, source)
                frame = engine.render(source, Motion(expression=tuple(float(v) for v in z))).crop
                tiles.append(tile(frame, f"{control} {value:+g}"))
            rows.append(np.concatenate(tiles, axis=1))
    finally:
        engine.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--checkpoint", action="append", required=True)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("/tmp/edit_strips.png"))
    args = parser.parse_args()
    finder = Engine.load(args.checkpoint[0], device="cpu", precision="fp32", output_size=None)  # the model's crops only
    sources = []
    for path in list_videos(args.data)[: args.clips]:
        crops = crop_clip(finder, read_spread_frames(path, 1))
        if crops is not None:
            sources.append(crops.source)
    finder.close()
    rows = [row for checkpoint in args.checkpoint for row in rows_for(checkpoint, sources)]
    cv2.imwrite(str(args.out), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
