"""How far does the renderer follow a mouth and the eyes when the tracker's dense mesh joins the spline?

On each validation clip (source = its first frame, driving = frames spread over it, one fixed crop, as
``evaluate``), the source is rendered with each driving frame's tracked motion three ways:

* ``keypoints``: as reenactment does today (tracker turns and placement, landmark shifts of the 15 keypoints);
* ``anchors``: the same plus 152 mesh anchors in the spline, posed with the model's own pose and moved by the
  driver's non-rigid landmark movement (what cross-identity reenactment can use);
* ``oracle``: the same, but the anchors go exactly where the driver's landmarks are (an upper bound).

Per variant: L1 and LPIPS against the real frame, and the output's mouth- and eye-opening change against the
driver's (Pearson r and gain, the regression slope), beside copying the source.

    python experiments/anchor_oracle.py VAL_FOLDER --frames 8 --out /tmp/anchor_oracle
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmfa_studio.engine import Engine
from mmfa_studio.engine.reenact import LandmarkExpression
from mmfa_studio.eval.evaluate import EvalSettings, Evaluator, crop_clip, list_videos, read_spread_frames
from mmfa_studio.eval.metrics import l1
from mmfa_studio.face import nonrigid_motion
from mmfa_studio.face.anchors import anchor_indices, anchor_movement, face_anchors, pixels_to_units
from mmfa_studio.face.measures import expression_measures
from mmfa_studio.face.pose import head_placement
from mmfa_studio.model.anchors import pose_anchors
from mmfa_studio.model.dense_motion import AnchorPoints

VARIANTS = ("copy", "keypoints", "anchors", "oracle")


def following(out: list[float], drv: list[float]) -> dict[str, float | None]:
    o, d = np.asarray(out), np.asarray(drv)
    if len(o) < 3 or d.std() < 1e-6:
        return {"r": None, "gain": None}
    r = float(np.corrcoef(o, d)[0, 1]) if o.std() > 1e-9 else 0.0
    gain = float(np.cov(o, d)[0, 1] / d.var(ddof=1))
    return {"r": r, "gain": gain}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--out", type=Path, default=Path("/tmp/anchor_oracle"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    engine = Engine.load(args.checkpoint, device="cpu", precision="fp32")
    evaluator = Evaluator(engine, EvalSettings(frames_per_clip=args.frames, controls=False))
    size = engine.image_size
    rows: dict[str, dict[str, list[float]]] = {v: {"l1": [], "lpips": [], "mouth": [], "eye": []} for v in VARIANTS}
    driver_change = {"mouth": [], "eye": []}
    per_clip = []
    for path in list_videos(args.data):
        crops = crop_clip(engine, read_spread_frames(path, args.frames))
        if crops is None:
            continue
        source = engine.prepare_crop(crops.source, name=path.name)
        src_face = evaluator._face(crops.source)  # noqa: SLF001
        found = face_anchors(src_face, size) if src_face is not None else None
        anchors_3d = None if found is None else found.points
        if anchors_3d is None:
            continue
        src_measure = expression_measures(src_face)
        placement = head_placement(src_face.landmarks, src_face.pose)
        expression = LandmarkExpression.for_source(engine, source, face=src_face)
        kept, motions, shifts, anchor_shifts, oracle_points, faces = [], [], [], [], [], []
        for crop in crops.driving:
            face = evaluator._face(crop)  # noqa: SLF001
            movement = nonrigid_motion(src_face, face) if face is not None else None
            if face is None or movement is None:
                continue
            kept.append(crop)
            faces.append(face)
            motions.append(evaluator._driving_motion(crop, src_face, face))  # noqa: SLF001
            shifts.append(expression.keypoint_shift(src_face, face))
            anchor_shifts.append(anchor_movement(movement) * (2.0 * placement.scale / size))
            oracle_points.append(pixels_to_units(face.landmarks[anchor_indices(), :2], size))
        if not kept:
            continue
        enc = source.encoding
        with torch.inference_mode():
            target = engine.target_motion(source, motions, shifts)
            own = enc.motion
            a = torch.as_tensor(anchors_3d, dtype=torch.float32)[None]
            posed = pose_anchors(a, own.yaw, own.pitch, own.roll, own.translation, own.scale, target.yaw,
                                 target.pitch, target.roll, target.translation, target.scale,
                                 torch.as_tensor(np.stack(anchor_shifts), dtype=torch.float32))
            oracle = AnchorPoints(source=posed.source, driving=torch.as_tensor(np.stack(oracle_points),
                                                                                dtype=torch.float32))
            renders = {"copy": [crops.source] * len(kept)}
            for name, anchors in (("keypoints", None), ("anchors", posed), ("oracle", oracle)):
                image = engine.model.render(enc, target, all_scales=False, anchors=anchors).image
                renders[name] = list(engine._to_uint8(image))  # noqa: SLF001
        clip_rows = {}
        for name in VARIANTS:
            outs = renders[name]
            rows[name]["l1"] += [l1(o, t) for o, t in zip(outs, kept)]
            rows[name]["lpips"] += [evaluator.lpips(o, t) for o, t in zip(outs, kept)]
            for o in outs:
                of = evaluator._face(o)  # noqa: SLF001
                m = expression_measures(of) if of is not None else src_measure
                rows[name]["mouth"].append(m.mouth_open - src_measure.mouth_open)
                rows[name]["eye"].append(m.eye_open - src_measure.eye_open)
            clip_rows[name] = float(np.mean([l1(o, t) for o, t in zip(outs, kept)]))
        for face in faces:
            m = expression_measures(face)
            driver_change["mouth"].append(m.mouth_open - src_measure.mouth_open)
            driver_change["eye"].append(m.eye_open - src_measure.eye_open)
        per_clip.append({"clip": path.name, "frames": len(kept), "l1": clip_rows})
        strip_rows = [np.concatenate([kept[i]] + [renders[v][i] for v in VARIANTS], axis=1)
                      for i in np.linspace(0, len(kept) - 1, min(4, len(kept))).round().astype(int)]
        Image.fromarray(np.concatenate(strip_rows, axis=0)).save(args.out / f"{path.stem}.png")
        print(path.name, {k: round(v, 4) for k, v in clip_rows.items()}, flush=True)
    report = {"columns": ["driver"] + list(VARIANTS), "per_clip": per_clip}
    for name in VARIANTS:
        report[name] = {
            "l1": float(np.mean(rows[name]["l1"])), "lpips": float(np.mean(rows[name]["lpips"])),
            "mouth": following(rows[name]["mouth"], driver_change["mouth"]),
            "eye": following(rows[name]["eye"], driver_change["eye"]),
        }
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "per_clip"}, indent=2))


if __name__ == "__main__":
    main()
