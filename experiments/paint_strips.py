"""What the generator paints where the warp cannot show it: per validation clip, the driving frames whose mouth
opens most beyond the source's and whose eyes close most, reenacted from the clip's first frame by each
checkpoint, beside the real frames; with the L1 inside those frames' mouth and eyes (``face.regions``) against
the real frame, and copying the source for scale.

    .venv/bin/python experiments/paint_strips.py VAL --checkpoint A [--checkpoint B …] --out paint.png [--frames 48]

Rows: the real frames, then one row per checkpoint (same frames, in the order given). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from edit_strips import tile  # this folder's: run as a script, it is on the path

from mmfa_studio.engine import Engine, Reenactor
from mmfa_studio.eval.evaluate import crop_clip, list_videos, read_spread_frames
from mmfa_studio.eval.metrics import region_l1
from mmfa_studio.face.measures import expression_measures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--checkpoint", action="append", required=True)
    parser.add_argument("--frames", type=int, default=48, help="frames spread over each clip to choose from")
    parser.add_argument("--out", type=Path, default=Path("/tmp/paint.png"))
    args = parser.parse_args()
    finder = Engine.load(args.checkpoint[0], device="cpu", precision="fp32", output_size=None)
    picks = []  # (clip, source crop, [(label, driving crop, its face)])
    for path in list_videos(args.data):
        crops = crop_clip(finder, read_spread_frames(path, args.frames))
        if crops is None:
            continue
        faces = [finder.tracker.detect(c) for c in (crops.source, *crops.driving)]
        if not faces[0]:
            continue
        base = expression_measures(faces[0][0])
        measured = [(i, expression_measures(f[0]), f[0]) for i, f in enumerate(faces[1:]) if f]
        if not measured:
            continue
        mouth = max(measured, key=lambda m: m[1].mouth_open - base.mouth_open)
        eyes = min(measured, key=lambda m: m[1].eye_open - base.eye_open)
        picks.append((path.stem, crops.source, [("mouth", crops.driving[mouth[0]], mouth[2]),
                                                 ("eyes", crops.driving[eyes[0]], eyes[2])]))
    finder.close()

    truth = [tile(crop, f"{clip[:14]} {label}", 160) for clip, _, chosen in picks for label, crop, _ in chosen]
    rows = [np.concatenate(truth, axis=1)]
    copy = {part: float(np.mean([region_l1(src, crop, face.landmarks)[f"{part}_l1"]
                                 for _, src, chosen in picks for label, crop, face in chosen if label == part]))
            for part in ("mouth", "eyes")}
    report: dict = {"frames": len(picks), "copy the source": copy}
    for checkpoint in args.checkpoint:
        engine = Engine.load(checkpoint, device="cpu", precision="fp32", output_size=None)
        tiles, errors = [], {"mouth": [], "eyes": []}
        try:
            for _, src, chosen in picks:
                source = engine.prepare_crop(src, name="source")
                for label, crop, face in chosen:
                    with Reenactor(engine, source, smoothing=0.0) as reenactor:
                        reenactor.process(src)  # the reference: the source frame itself
                        out = reenactor.process(crop).frame.crop
                    errors[label].append(region_l1(out, crop, face.landmarks)[f"{label}_l1"])
                    tiles.append(tile(out, Path(checkpoint).parent.name[:20], 160))
        finally:
            engine.close()
        rows.append(np.concatenate(tiles, axis=1))
        report[checkpoint] = {part: float(np.mean(v)) for part, v in errors.items()}
    cv2.imwrite(str(args.out), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
