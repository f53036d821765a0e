"""Render the real MMFA Studio window offscreen, editing the sample portrait, and save docs/screenshot.png.

    python scripts/screenshot.py [--checkpoint PATH] [--out docs/screenshot.png]

Uses the bundled model (mmfa_studio/assets/mmfa-cpu.safetensors) unless --checkpoint is given. The window shows the
before/after compare of the sample portrait turned by some yaw/pitch with named expression controls set (a
model without them: a sampled expression), and a short keyframed timeline, so the README's picture is the app
doing real work.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Save a screenshot of the app editing the sample portrait.")
    parser.add_argument("--checkpoint", help="model checkpoint (default: the bundled model)")
    parser.add_argument("--out", default=str(REPO_ROOT / "docs" / "screenshot.png"))
    parser.add_argument("--photo",
                        help="portrait to edit (default: the bundled mmfa_studio/assets/sample_portrait.png)")
    parser.add_argument("--yaw", type=float, default=8.0)
    parser.add_argument("--pitch", type=float, default=4.0)
    parser.add_argument("--control", action="append", default=None, metavar="NAME=VALUE",
                        help="a named control to set (repeatable; default: mouth_open=0.6 and brows=0.8)")
    parser.add_argument("--seed", type=int, default=3, help="seed of the sampled expression (a model without "
                                                            "named controls)")
    parser.add_argument("--strength", type=float, default=0.3, help="its strength (0 = the source's own)")
    parser.add_argument("--size", default="1280x860")
    args = parser.parse_args(argv)
    controls: dict[str, float] = {}
    for item in args.control or ["mouth_open=0.6", "brows=0.8"]:
        name, _, value = item.partition("=")
        try:
            controls[name] = float(value)
        except ValueError:
            parser.error(f"--control {item!r} must be NAME=NUMBER, e.g. mouth_open=0.8")

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from mmfa_studio.assets import BUNDLED_MODEL
    from mmfa_studio.atomic import atomic_path

    if args.checkpoint is None and not BUNDLED_MODEL.is_file():
        print(f"error: the bundled model {BUNDLED_MODEL} is missing; pass --checkpoint", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication([])
    app.setApplicationName("MMFA Studio")
    from mmfa_studio.app.main_window import SAMPLE_PORTRAIT, MainWindow

    settings = QSettings(str(Path(tempfile.mkdtemp()) / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    window.show()

    def wait(predicate, what: str, timeout: float = 300.0) -> None:
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise SystemExit(f"error: timed out waiting for {what}")
            app.processEvents()
            time.sleep(0.005)

    try:
        window.start(args.photo or str(SAMPLE_PORTRAIT), args.checkpoint)
        wait(lambda: window.view.frames_shown > 0 or window.errors_shown, "the first frame")
        if window.engine_info is None or window.source_info is None:
            raise SystemExit(f"error: the model or the photo did not load: {window.view.message}")
        # A short timeline: neutral → turned with an expression → back, so the curves show something.
        window.timeline.set_settings(3.0, 25.0)
        window.timeline_panel.sync_settings()
        window.timeline_panel.set_time(0.0)
        window.add_keyframe()
        if window.editor.control_sliders:
            for name, value in controls.items():
                if name not in window.editor.control_sliders:
                    raise SystemExit(f"error: the model has no control {name!r}")
                window.editor.control_sliders[name].slider.setValue(value)
        else:
            window.random_expression(args.seed)
            window.editor.sliders["expression_strength"].slider.setValue(args.strength)
        wait(lambda: window.state.motion.expression is not None, "the expression")
        window.editor.sliders["yaw"].slider.setValue(args.yaw)
        window.editor.sliders["pitch"].slider.setValue(args.pitch)
        window.timeline_panel.set_time(1.5, emit=False)
        window.add_keyframe()
        window.timeline_panel.set_time(3.0, emit=False)
        window.editor.sliders["yaw"].slider.setValue(-args.yaw * 0.6)
        window.add_keyframe()
        window.timeline_panel.set_time(1.5)  # back to the turned pose with the expression
        window.compare_action.setChecked(True)
        wait(lambda: window.last_frame is not None and window.last_frame.motion == window.state.motion,
             "the edited frame")
        for _ in range(20):
            app.processEvents()
            time.sleep(0.01)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            if not window.grab().save(str(tmp), "PNG"):
                raise SystemExit(f"error: cannot write {out}")
        motion = window.state.motion
        print(f"saved {out} ({window.engine_info.model_name}, yaw {motion.yaw:g}°, pitch {motion.pitch:g}°)")
    finally:
        window.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
