"""Expression following and named controls, measured on the product's own paths (``Reenactor``, ``Engine``).

* following: each validation clip drives a held-out source — its own first frame (self) or the next clip's
  first frame (cross) — through ``Reenactor`` (relative mode, as the app and ``reenact`` run it); per driving
  frame the output's mouth- and eye-opening change since the first output against the driver's change since
  its first frame: Pearson r and gain (regression slope);
* controls (with a model that has them): ``evaluate``'s named controls on every source (each control at its
  range's ends: the change of its measures, the head turn it causes and the identity cosine).

    python experiments/expression_following.py VAL --checkpoint CKPT --frames 24 --out /tmp/following
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from mmfa_studio.engine import Engine, Reenactor
from mmfa_studio.eval.evaluate import (
    Evaluator,
    Following,
    controls_summary,
    crop_clip,
    list_videos,
    read_spread_frames,
)
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
    evaluator = Evaluator(engine)  # each control at its range's ends, as `evaluate` measures it
    report["controls"] = controls_summary([evaluator.named_controls(engine.prepare_crop(crops.source, name=name),
                                                                    crops.source) for name, crops in clips])
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
