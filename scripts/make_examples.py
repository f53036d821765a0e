"""Make the README's example images from the committed model and the bundled sample portrait.

    .venv/bin/python scripts/make_examples.py [--checkpoint mmfa_studio/assets/mmfa-cpu.safetensors] [--driving VIDEO]

Writes docs/examples/pose_edits.png, expression_edits.png, named_controls.png (for a model with named expression
controls: each at 1, brows also at −1) and (with --driving) reenactment.png. The
reenactment strip shows only the re-rendered sample portrait, with the driving face's measured pose printed
under each frame: the driving video itself (research data of unclear licence) is never shown or shipped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from mmfa_studio.atomic import atomic_path
from mmfa_studio.engine import SAMPLE_PORTRAIT, Engine, Motion, Reenactor, VideoFileSource
from mmfa_studio.eval.evaluate import control_settings

OUT = Path(__file__).resolve().parent.parent / "docs" / "examples"


def labelled(image: np.ndarray, text: str) -> np.ndarray:
    """The image with a caption band under it."""
    band = np.full((28, image.shape[1], 3), 255, np.uint8)
    cv2.putText(band, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1, cv2.LINE_AA)
    return np.concatenate([image, band], axis=0)


def save(path: Path, tiles: list[np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(np.concatenate(tiles, axis=1), cv2.COLOR_RGB2BGR))
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--driving", help="a talking-face video to drive the portrait (relative motion)")
    parser.add_argument("--frames", type=int, default=6)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    engine = Engine.load(args.checkpoint, precision="fp32", output_size=None)  # the model's crops only
    source = engine.prepare_source(SAMPLE_PORTRAIT)

    edits = [("source", None), ("yaw -12", Motion(yaw=-12)), ("yaw +15", Motion(yaw=15)),
             ("pitch +15", Motion(pitch=15)), ("pitch -15", Motion(pitch=-15)), ("roll +15", Motion(roll=15)),
             ("scale 1.15", Motion(scale=1.15)), ("tx +0.1", Motion(tx=0.1))]
    tiles = [labelled(source.crop if m is None else engine.render(source, m).crop, name) for name, m in edits]
    save(OUT / "pose_edits.png", tiles)

    z = [engine.expressions.sample(seed) for seed in (1, 2, 3)]
    tiles = [labelled(source.crop, "source")]
    tiles += [labelled(engine.render(source, Motion(expression=tuple(map(float, zi)))).crop, f"prior sample {i + 1}")
              for i, zi in enumerate(z)]
    path = engine.expressions.interpolate(z[0], z[1], np.linspace(0, 1, 4), mode="slerp")
    tiles += [labelled(engine.render(source, Motion(expression=tuple(map(float, zi)))).crop, f"slerp 1-2 t={t:.2f}")
              for zi, t in zip(path, np.linspace(0, 1, 4))]
    save(OUT / "expression_edits.png", tiles)

    if engine.expressions.controls is not None:
        tiles = [labelled(source.crop, "source")]
        for name, value in control_settings(engine.expressions.controls):
            z = engine.expressions.with_controls(source.expression, {name: value}, source)
            tiles.append(labelled(engine.render(source, Motion(expression=tuple(map(float, z)))).crop,
                                  f"{name} {value:+g}"))
        save(OUT / "named_controls.png", tiles)

    if args.driving:
        with VideoFileSource(Path(args.driving)) as video:
            frames = list(video)
        picks = np.linspace(0, len(frames) - 1, args.frames + 1).round().astype(int)
        tiles = []
        with Reenactor(engine, source, mode="relative", smoothing=None) as reenactor:
            for i, frame in enumerate(frames[: picks[-1] + 1]):
                result = reenactor.process(frame)
                if i in picks[1:]:
                    p = result.driving_pose
                    text = "no face" if p is None else f"drv y{p.yaw:+.0f} p{p.pitch:+.0f} r{p.roll:+.0f}"
                    tiles.append(labelled(result.frame.crop, text))
        save(OUT / "reenactment.png", [labelled(source.crop, "source")] + tiles)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
