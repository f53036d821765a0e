"""Named controls on held-out portraits, against issue 21's targets: each control at 1 (``brows`` also at −1) on
frontal, closed-mouth portraits, measured by the face tracker on the render.

Portraits are taken from the folder in name order, keeping the first ``--count`` whose tracked face is frontal
(yaw and pitch within 10°) with a closed mouth (mouth-open ratio < 0.05), as the issue's targets ask. Per control
the median over portraits of: the mouth-open ratio, each eye's opening ratio, the mouth's width and the brows'
height (both relative to the zero edit), the head turn against the zero edit and the identity cosine (dlib)
against the photo. Targets: mouth_open ≥ 0.3, blink ≤ 0.08 (both eyes), blink_left/right ≤ 0.08 on that eye only,
smile widens ≥ 10 %, brows move both ways, every control turning the head ≤ 1° with identity ≥ 0.9.

    python experiments/control_reach.py ../shared/data/portraits --checkpoint A [--checkpoint B …] --count 12 \
        --out /tmp/controls.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from mmfa_studio.engine import Engine, Motion
from mmfa_studio.eval.evaluate import control_settings
from mmfa_studio.eval.metrics import Unavailable, cosine, load_identity_embedder
from mmfa_studio.face.measures import control_measures, expression_measures

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def pick_portraits(engine: Engine, folder: Path, count: int) -> list[tuple[str, np.ndarray]]:
    picked = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            source = engine.prepare_source(path)
        except Exception:  # noqa: BLE001 — a portrait the tracker cannot use is skipped, not an error here
            continue
        faces = engine.tracker.detect(source.crop)
        if not faces or faces[0].pose is None:
            continue
        pose = faces[0].pose
        if abs(pose.yaw) <= 10 and abs(pose.pitch) <= 10 and expression_measures(faces[0]).mouth_open < 0.05:
            picked.append((path.name, source.crop))
        if len(picked) == count:
            break
    return picked


def reach(checkpoint: str | None, portraits: list[tuple[str, np.ndarray]]) -> tuple[dict, list[np.ndarray]]:
    engine = Engine.load(checkpoint, device="cpu", precision="fp32", output_size=None)
    identity = load_identity_embedder()
    rows: dict[str, dict[str, list[float]]] = {}
    strips = []
    try:
        for name, crop in portraits:
            source = engine.prepare_crop(crop, name=name)
            zero = engine.render(source, Motion()).crop
            found = engine.tracker.detect(zero)
            if not found:
                continue
            m0, pose0 = control_measures(found[0]).as_dict(), found[0].pose.as_array()
            tiles = [crop, zero]
            for control, value in control_settings(engine.expressions.controls):
                z = engine.expressions.with_controls(source.expression, {control: value}, source)
                out = engine.render(source, Motion(expression=tuple(float(v) for v in z))).crop
                tiles.append(out)
                faces = engine.tracker.detect(out)
                if not faces:
                    continue
                m1 = control_measures(faces[0]).as_dict()
                row = rows.setdefault(f"{control} {value:+g}", {})
                for key in ("mouth_open", "eye_open_left", "eye_open_right"):
                    row.setdefault(key, []).append(m1[key])
                row.setdefault("mouth_width_change", []).append(m1["mouth_width"] / m0["mouth_width"] - 1)
                row.setdefault("brow_height_change", []).append(m1["brow_height"] - m0["brow_height"])
                row.setdefault("turn", []).append(float(np.abs(faces[0].pose.as_array() - pose0).max()))
                if not isinstance(identity, Unavailable):
                    a, b = identity.descriptor(crop), identity.descriptor(out)
                    if a is not None and b is not None:
                        row.setdefault("identity", []).append(cosine(a, b))
            strips.append(np.concatenate([cv2.resize(t, (160, 160), interpolation=cv2.INTER_AREA) for t in tiles], 1))
    finally:
        engine.close()
    report = {c: {k: float(np.median(v)) for k, v in row.items()} for c, row in rows.items()}
    return report, strips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("portraits", type=Path)
    parser.add_argument("--checkpoint", action="append", default=None)
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path("/tmp/control_reach.png"))
    args = parser.parse_args()
    finder = Engine.load((args.checkpoint or [None])[0], device="cpu", precision="fp32", output_size=None)
    portraits = pick_portraits(finder, args.portraits, args.count)
    finder.close()
    print("portraits:", ", ".join(name for name, _ in portraits))
    strips, reports = [], {}
    for checkpoint in args.checkpoint or [None]:
        report, rows = reach(checkpoint, portraits)
        reports[checkpoint or "bundled"] = report
        strips += rows
    cv2.imwrite(str(args.out), cv2.cvtColor(np.concatenate(strips, 0), cv2.COLOR_RGB2BGR))
    print(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
