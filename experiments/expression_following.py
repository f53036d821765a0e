"""Expression following and named controls, measured on the product's own paths (``Reenactor``, ``Engine``).

* following: each validation clip drives a held-out source — its own first frame (self) or the next clip's
  first frame (cross) — through ``Reenactor`` (relative mode, as the app and ``reenact`` run it); per driving
  frame the output's mouth- and eye-opening change since the first output against the driver's change since
  its first frame: Pearson r and gain (regression slope);
* controls (with a model that has them): each named control at 1 on every source, its measured change, the
  head turn it causes and the identity cosine (dlib).

    python experiments/expression_following.py VAL --checkpoint CKPT --frames 24 --out /tmp/following
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from mmfa_studio.engine import Engine, Motion, Reenactor
from mmfa_studio.eval.evaluate import Following, crop_clip, list_videos, read_spread_frames
from mmfa_studio.eval.metrics import Unavailable, cosine, load_identity_embedder
from mmfa_studio.face.measures import expression_measures


def following(out: list[float], drv: list[float]) -> dict[str, float | int | None]:
    return Following(driver=list(drv), output=list(out)).figures()


def measure(engine: Engine, image: np.ndarray):
    faces = engine.tracker.detect(image)
    return (expression_measures(faces[0]), faces[0]) if faces else (None, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path("/tmp/following"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    engine = Engine.load(args.checkpoint, device="cpu", precision="fp32", output_size=None)  # the model's crops only
    clips = []
    for path in list_videos(args.data):
        crops = crop_clip(engine, read_spread_frames(path, args.frames))
        if crops is not None:
            clips.append((path.name, crops))
    series = {k: {"mouth": ([], []), "eye": ([], [])} for k in ("self", "cross")}
    for i, (name, crops) in enumerate(clips):
        driving = [crops.source] + list(crops.driving)
        for kind, source_crop in (("self", crops.source), ("cross", clips[(i + 1) % len(clips)][1].source)):
            source = engine.prepare_crop(source_crop, name=name)
            outputs = []
            with Reenactor(engine, source, smoothing=0.0) as reenactor:
                for frame in driving:
                    outputs.append(reenactor.process(frame).frame.crop)
            first_out, _ = measure(engine, outputs[0])
            first_drv, _ = measure(engine, driving[0])
            if first_out is None or first_drv is None:
                continue
            for out, drv in zip(outputs[1:], driving[1:]):
                mo, _ = measure(engine, out)
                md, _ = measure(engine, drv)
                if mo is None or md is None:
                    continue
                for key, attr in (("mouth", "mouth_open"), ("eye", "eye_open")):
                    series[kind][key][0].append(getattr(mo, attr) - getattr(first_out, attr))
                    series[kind][key][1].append(getattr(md, attr) - getattr(first_drv, attr))
            picks = np.linspace(1, len(driving) - 1, 5).round().astype(int)
            strip = np.concatenate([np.concatenate([driving[j] for j in picks], 1),
                                    np.concatenate([outputs[j] for j in picks], 1)], 0)
            Image.fromarray(strip).save(args.out / f"{Path(name).stem}-{kind}.png")
        print(name, flush=True)
    report = {kind: {key: following(*pair) for key, pair in groups.items()} for kind, groups in series.items()}
    if engine.expressions.controls is not None:
        identity = load_identity_embedder()
        controls: dict[str, dict[str, list[float]]] = {}
        for name, crops in clips:
            source = engine.prepare_crop(crops.source, name=name)
            zero = engine.render(source, Motion()).crop
            m0, f0 = measure(engine, zero)
            if m0 is None:
                continue
            for control in engine.expressions.controls.directions:
                value = -1.0 if control == "brows_down" else 1.0
                z = engine.expressions.with_controls(source.expression, {control: value}, source)
                out = engine.render(source, Motion(expression=tuple(float(v) for v in z))).crop
                m1, f1 = measure(engine, out)
                row = controls.setdefault(control, {"mouth_open": [], "eye_open": [], "turn": [], "identity": []})
                if m1 is None:
                    continue
                row["mouth_open"].append(m1.mouth_open - m0.mouth_open)
                row["eye_open"].append(m1.eye_open - m0.eye_open)
                row["turn"].append(float(np.abs(f1.pose.as_array() - f0.pose.as_array()).max()))
                if not isinstance(identity, Unavailable):
                    a, b = identity.descriptor(crops.source), identity.descriptor(out)
                    if a is not None and b is not None:
                        row["identity"].append(cosine(a, b))
        report["controls"] = {c: {k: (float(np.mean(v)) if v else None) for k, v in row.items()}
                              for c, row in controls.items()}
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
