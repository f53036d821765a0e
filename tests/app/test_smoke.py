"""Launch the real entry point (``python -m mmfa_studio gui``) in a subprocess under Xvfb and screenshot it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from PySide6.QtGui import QImage


@pytest.mark.slow
def test_real_entry_point_under_xvfb(tmp_path, tiny_checkpoint, sample_portrait):
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run is missing (apt-get install -y xvfb libxcb-icccm4 libxcb-keysyms1)")
    shot = tmp_path / "screenshot.png"
    env = dict(os.environ, MMFA_STUDIO_SCREENSHOT=str(shot), MMFA_STUDIO_REPORT_VISIBLE="1",
               HOME=str(tmp_path))  # fresh QSettings
    env.pop("QT_QPA_PLATFORM", None)  # a real X11 window, not offscreen
    result = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1280x900x24", sys.executable, "-m", "mmfa_studio", "gui",
         str(sample_portrait), "--checkpoint", str(tiny_checkpoint), "--device", "cpu"],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "window-visible" in result.stdout
    assert "frame rendered: True" in result.stdout, result.stdout
    image = QImage(str(shot))
    assert image.width() >= 800 and image.height() >= 600
    # A real picture, not a blank window: many distinct colours.
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 200


def test_gui_command_refuses_a_missing_photo(tmp_path):
    from mmfa_studio.cli import main

    assert main(["gui", str(tmp_path / "nope.jpg")]) == 2


def test_the_gui_modules_do_not_import_torch_or_the_model():
    """The window must open before torch loads: app modules import neither torch nor mmfa_studio.model."""
    code = (
        "import sys; from PySide6.QtWidgets import QApplication; app = QApplication([]);"
        "import mmfa_studio.app.main_window, mmfa_studio.app.main, mmfa_studio.cli.gui;"
        "bad = [m for m in ('torch', 'mmfa_studio.model', 'mmfa_studio.engine') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
