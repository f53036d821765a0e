"""fit-expression: fit the anchor expression on tracked data, or copy it from another checkpoint."""

from __future__ import annotations

import pytest
from safetensors import safe_open

from engine.clips import face_clip  # tests/engine/clips.py
from mmfa_studio.checkpoint import read_info
from mmfa_studio.cli import main
from mmfa_studio.motion import CONTROLS_KEY


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, sample_portrait, tiny_checkpoint):
    tmp = tmp_path_factory.mktemp("fit")
    (tmp / "videos").mkdir()
    face_clip(tmp / "videos" / "clip.mp4", sample_portrait, frames=12, size=384)
    assert main(["prepare", str(tmp / "videos"), str(tmp / "data"), "--size", "64", "--no-progress",
                 "--landmarks"]) == 0
    out = tmp / "fitted.safetensors"
    assert main(["fit-expression", "--checkpoint", str(tiny_checkpoint), "--data", str(tmp / "data"),
                 "--out", str(out), "--steps", "30"]) == 0
    return out


def _anchor_tensors(path):
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys() if k.startswith("anchor_expression.")}


def test_expression_from_copies_the_expression_space_onto_another_renderer(fitted, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "copied.safetensors"
    assert main(["fit-expression", "--checkpoint", str(tiny_checkpoint), "--expression-from", str(fitted),
                 "--out", str(out)]) == 0
    donor, copied = _anchor_tensors(fitted), _anchor_tensors(out)
    assert donor and donor.keys() == copied.keys()
    assert all(donor[k].equal(copied[k]) for k in donor)
    assert read_info(out).metadata[CONTROLS_KEY] == read_info(fitted).metadata[CONTROLS_KEY]
    assert read_info(out).metadata["expression_fit"]["copied_from"] == str(fitted)
    capsys.readouterr()
    assert main(["controls", "--checkpoint", str(out)]) == 0
    assert "mouth_open" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    ([], "either --data"),
    (["--data", "DATA", "--expression-from", "DONOR"], "either --data"),
    (["--expression-from", "PLAIN"], "has no anchor expression"),
    (["--expression-from", "OUT"], "would be overwritten"),
    (["--data", "DATA", "--closed-lids", "1.5"], "--closed-lids must be in [0, 1]"),
])
def test_bad_sources_are_one_line_errors(extra, message, fitted, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "out.safetensors"
    names = {"DATA": str(tmp_path), "DONOR": str(fitted), "PLAIN": str(tiny_checkpoint), "OUT": str(out)}
    if "OUT" in extra:
        out.write_bytes(fitted.read_bytes())
    args = ["fit-expression", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]
    args += [names.get(a, a) for a in extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
