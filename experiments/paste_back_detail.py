"""How sharp a face pasted back into a large photo stays: per portrait and output size, the variance of the
Laplacian inside the face (the source's face-mesh hull), output over source, at zero edit (issue 18's measure),
and a strip of the face region to look at (photo, then each output size and edit, at the photo's own resolution).

    .venv/bin/python experiments/paste_back_detail.py PORTRAIT… [--sizes 256 512 1024] [--checkpoint CKPT]
        [--out strip.png] [--json detail.json]

Prints one JSON object: per portrait and size the detail kept (and under a yaw edit, for reference), with the
copy-the-source baseline being 1.0 by definition.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from mmfa_studio.engine import Engine, Motion
from mmfa_studio.eval.metrics import detail_kept, face_hull_mask

EDITS = (("zero edit", Motion()), ("yaw +15", Motion(yaw=15)))


def face_window(image: np.ndarray, landmarks: np.ndarray, side: int = 320) -> np.ndarray:
    """The face's box from the photo at its own resolution, resized to side × side for the strip."""
    x0, y0 = np.floor(landmarks.min(axis=0)).astype(int)
    x1, y1 = np.ceil(landmarks.max(axis=0)).astype(int)
    window = image[max(0, y0):y1, max(0, x0):x1]
    return cv2.resize(window, (side, side), interpolation=cv2.INTER_AREA if window.shape[0] > side else cv2.INTER_CUBIC)


def label(tile: np.ndarray, text: str) -> np.ndarray:
    band = np.full((22, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(band, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
    return np.concatenate([tile, band], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("portraits", nargs="+")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--out", default=None, help="a PNG strip of the face regions")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    engines = {size: Engine.load(args.checkpoint, device="cpu", precision=args.precision, output_size=size)
               for size in args.sizes}
    results: dict[str, dict] = {}
    rows = []
    for path in args.portraits:
        name = Path(path).stem
        entry: dict[str, dict] = {}
        row = None
        for size, engine in engines.items():
            source = engine.prepare_source(path)
            landmarks = source.faces[source.face_index].landmarks[:, :2]
            mask = face_hull_mask(source.image.shape, landmarks)
            if row is None:
                row = [label(face_window(source.image, landmarks), f"{name[:22]} {source.image.shape[1]}px")]
            figures = {"crop_side_px": round(float(source.transform.box[2]), 1)}
            for edit, motion in EDITS:
                start = time.perf_counter()
                frame = engine.render(source, motion, paste_back=True)
                seconds = time.perf_counter() - start
                key = edit.replace(" ", "_")
                figures[key] = round(detail_kept(frame.full, source.image, mask), 4)
                figures[f"{key}_seconds"] = round(seconds, 3)
                row.append(label(face_window(frame.full, landmarks), f"{size}px {edit}: {figures[key]:.0%}"))
            entry[str(size)] = figures
        results[name] = entry
        rows.append(np.concatenate(row, axis=1))
    summary = {str(size): {key: round(float(np.median([results[n][str(size)][key] for n in results])), 4)
                           for key in ("zero_edit", "yaw_+15")} for size in args.sizes}
    report = {"portraits": results, "median": summary, "copy_baseline": 1.0}
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    if args.out:
        cv2.imwrite(args.out, cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
