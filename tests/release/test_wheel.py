"""A release wheel holds the model and the sample portrait, and renders the sample with the bundled model when
installed outside the checkout (issue 20.1).

The wheel is built from a copy of the package (setuptools' build/ folder would otherwise keep stale files) and
installed with ``pip --target`` beside the dependencies of this interpreter's venv (torch etc. are not rebuilt:
offline, and minutes). The installed copy runs from a folder outside the checkout, with only it on PYTHONPATH.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mmfa_studio.assets import BUNDLED_MODEL, SAMPLE_PORTRAIT

CHECKOUT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # about 15 s to build, 15 s to render

SHIPPED = {  # path in the wheel → the checkout's file it must equal byte for byte
    "mmfa_studio/assets/mmfa-cpu.safetensors": BUNDLED_MODEL,
    "mmfa_studio/assets/sample_portrait.png": SAMPLE_PORTRAIT,
    "mmfa_studio/assets/ATTRIBUTION.md": SAMPLE_PORTRAIT.parent / "ATTRIBUTION.md",
    "mmfa_studio/configs/cpu.yaml": CHECKOUT / "mmfa_studio" / "configs" / "cpu.yaml",
    "mmfa_studio/face/data/canonical_face.npz": CHECKOUT / "mmfa_studio" / "face" / "data" / "canonical_face.npz",
}


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{cmd[:4]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if not BUNDLED_MODEL.is_file():
        pytest.skip(f"no bundled model at {BUNDLED_MODEL}")
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    shutil.copytree(CHECKOUT / "mmfa_studio", src / "mmfa_studio",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(CHECKOUT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", str(src),
          "-w", str(root / "dist")], cwd=root)
    (built,) = (root / "dist").glob("mmfa_studio-*.whl")
    return built


def test_the_wheel_holds_the_model_the_sample_and_the_package_data(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for name, original in SHIPPED.items():
            assert name in names, f"{name} is not in the wheel"
            assert hashlib.sha256(z.read(name)).digest() == hashlib.sha256(original.read_bytes()).digest(), name
    assert not any(n.startswith(("tests/", "models/", "resources/", "scripts/")) for n in names)
    assert 15 * 2**20 < wheel.stat().st_size < 40 * 2**20  # the model (18 MB) is most of it


def test_the_installed_wheel_renders_the_sample_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)],
         cwd=tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    # Only the installed copy: the checkout is neither on PYTHONPATH nor the working folder.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MMFA_SHARED_DATA")}
    env["PYTHONPATH"] = str(site)
    probe = ("import json, mmfa_studio, mmfa_studio.assets as a; "
             "print(json.dumps([mmfa_studio.__file__, str(a.BUNDLED_MODEL), str(a.SAMPLE_PORTRAIT)]))")
    where = _run([sys.executable, "-c", probe], cwd=outside, env=env)
    package, model, sample = (Path(p) for p in json.loads(where.stdout.strip().splitlines()[-1]))
    for path in (package, model, sample):
        assert path.is_relative_to(site), f"{path} is not the installed copy"
    assert model.is_file() and sample.is_file()
    out = outside / "turned.png"
    # the console script pip wrote, with no --checkpoint: the bundled model
    render = _run([str(site / "bin" / "mmfa-studio"), "render", str(sample), "-o", str(out), "--yaw", "15",
                   "--device", "cpu", "--json"], cwd=outside, env=env)
    summary = json.loads(render.stdout[render.stdout.index("{"):])
    assert Path(summary["checkpoint"]) == model
    import cv2

    image = cv2.imread(str(out))
    assert image is not None and image.shape == (512, 512, 3) and image.std() > 20  # the default --output-size
