"""Every command line in README.md runs: each is read from the README, its placeholders filled with small test
inputs, its sizes shrunk to the tiny config, and run through the real entry point. A README command with no
recipe here fails, so a new documented command cannot go untested."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.clips import face_clip  # tests/engine/clips.py (tests/ is on sys.path)
from mmfa_studio.cli import build_parser, main

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
COMMAND_LINE = re.compile(r"^ {4}((?:mmfa-studio|torchrun) .*)$", re.M)


def readme_commands() -> list[str]:
    """The README's indented command lines, comments dropped."""
    return [re.split(r"\s+#", line, maxsplit=1)[0].strip() for line in COMMAND_LINE.findall(README.read_text())]


def tokens(line: str) -> list[str]:
    """The line's words with every optional ``[...]`` part taken (the README shows what a user may add)."""
    return shlex.split(line.replace("[", " ").replace("]", " "))


def name_of(words: list[str]) -> str:
    """``mmfa-studio NAME …`` → NAME; ``torchrun … -m mmfa_studio.cli.train …`` → "torchrun train"."""
    if words[0] == "torchrun":
        return f"torchrun {words[words.index('-m') + 1].rsplit('.', 1)[1]}"
    return words[1]


@dataclass
class Inputs:
    """Small stand-ins for the README's placeholders, made on first use."""

    tmp: Path
    portrait: Path
    checkpoint: Path
    _made: dict[str, Path] = field(default_factory=dict)

    def _once(self, key: str, make: Callable[[Path], None]) -> Path:
        if key not in self._made:
            path = self.tmp / key
            make(path)
            self._made[key] = path
        return self._made[key]

    def videos(self) -> Path:
        def make(folder: Path) -> None:
            folder.mkdir()
            face_clip(folder / "clip.mp4", self.portrait, frames=12, size=384)
        return self._once("videos", make)

    def prepared(self) -> Path:
        def make(folder: Path) -> None:
            assert main(["prepare", str(self.videos()), str(folder), "--size", "64", "--no-progress"]) == 0
        return self._once("prepared", make)

    def prepared_with_landmarks(self) -> Path:
        def make(folder: Path) -> None:
            assert main(["prepare", str(self.videos()), str(folder), "--size", "64", "--no-progress",
                         "--landmarks"]) == 0
        return self._once("prepared_landmarks", make)

    def expression_checkpoint(self) -> Path:
        """The tiny model with an anchor expression VAE and named controls (a short fit)."""
        def make(path: Path) -> None:
            assert main(["fit-expression", "--checkpoint", str(self.checkpoint), "--data",
                         str(self.prepared_with_landmarks()), "--out", str(path), "--steps", "30"]) == 0
        return self._once("expression.safetensors", make)

    def keyframes(self) -> Path:
        def make(path: Path) -> None:
            path.write_text(json.dumps([{"time": 0, "motion": {}}, {"time": 0.2, "motion": {"yaw": 10}}]))
        return self._once("keyframes.json", make)


def fill(words: list[str], inputs: Inputs, out: Path) -> list[str]:
    """The README's placeholders → test inputs; output names → files in ``out``."""
    name = name_of(words)
    placeholders: dict[str, Callable[[], object]] = {
        "photo.jpg": lambda: inputs.portrait, "smile.jpg": lambda: inputs.portrait,
        "driving.mp4": lambda: inputs.videos() / "clip.mp4", "keyframes.json": inputs.keyframes,
        "VIDEOS": inputs.videos, "CKPT": lambda: out / "model.safetensors",
        "DATA": ((lambda: out / "data") if name == "prepare" else
                 inputs.prepared_with_landmarks if name == "fit-expression" else inputs.prepared),
        "RUN": lambda: out / "run", "FILE": lambda: out / "bench.json",
        "models/validation_clips.txt": lambda: REPO_ROOT / "models" / "validation_clips.txt",
    }
    filled = []
    for word in words:
        if word in placeholders:
            filled.append(str(placeholders[word]()))
        elif re.fullmatch(r"[\w.-]+\.(png|mp4|json)", word):  # an output file
            filled.append(str(out / word))
        else:
            filled.append(word)
    return filled


def option(args: list[str], name: str, value: str | None) -> list[str]:
    """``args`` with option ``name`` set to ``value`` (added when absent; removed when ``value`` is None)."""
    if name in args:
        i = args.index(name)
        takes_value = i + 1 < len(args) and not args[i + 1].startswith("--")
        del args[i:i + 1 + takes_value]
    return args if value is None else [*args, name, value] if value else [*args, name]


def tiny_model(args: list[str], inputs: Inputs) -> list[str]:
    return args if "--checkpoint" in args else option(args, "--checkpoint", str(inputs.checkpoint))


def tiny_training(args: list[str], _inputs: Inputs) -> list[str]:
    args = option(option(args, "--config", "tiny"), "--device", "cpu")
    return option(args, "--max-steps", "2" if "--resume" in args else "1")


# How each README command is shrunk to a few seconds (its README options stay unless replaced here).
RECIPES: dict[str, Callable[[list[str], Inputs], list[str]]] = {
    "render": tiny_model,
    "animate": tiny_model,
    "reenact": tiny_model,
    "interpolate": lambda a, i: option(tiny_model(a, i), "--frames", "4"),
    "crop": lambda a, _i: a,
    "prepare": lambda a, _i: option(option(a, "--size", "64"), "--no-progress", ""),
    "train": tiny_training,
    "torchrun train": tiny_training,
    "evaluate": lambda a, _i: option(option(a, "--frames", "2"), "--device", "cpu"),
    "calibrate": lambda a, _i: option(a, "--device", "cpu"),
    "live": lambda a, i: option(tiny_model(a, i), "--max-frames", "3"),
    "bench": lambda a, _i: [*a, "--config", "tiny", "--variant", "hybrid", "--repeats", "1"],
    "fit-expression": lambda a, _i: option(a, "--steps", "30"),
    "controls": lambda a, _i: a,
}


def run_entry(words: list[str]) -> int:
    if words[0] == "torchrun":  # one process of what torchrun starts, through the same module entry
        from mmfa_studio.cli.train import main as train_main

        return train_main(words[words.index("-m") + 2:])
    return main(words[1:])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, sample_portrait, tiny_checkpoint) -> Inputs:
    return Inputs(tmp_path_factory.mktemp("readme_inputs"), sample_portrait, tiny_checkpoint)


@pytest.fixture()
def one_torch_thread():
    """Training runs single-threaded, as in tests/train (a shared 2-core machine stalls two spinning threads)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_readme_shows_every_command_with_a_recipe():
    names = [name_of(tokens(line)) for line in readme_commands()]
    assert len(names) >= 10, names
    missing = [n for n in names if n not in RECIPES]
    assert not missing, f"README commands with no recipe in {Path(__file__).name}: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("line", readme_commands(), ids=lambda line: name_of(tokens(line)))
def test_a_readme_command_runs_on_the_tiny_config(line, inputs, tmp_path, monkeypatch, capsys, one_torch_thread):
    monkeypatch.chdir(REPO_ROOT)  # README paths are relative to the checkout
    words = fill(tokens(line), inputs, tmp_path)
    if words[0] == "mmfa-studio":  # the README's own options exist, before any is shrunk
        build_parser().parse_args(words[1:])
    name = name_of(words)
    if "CKPT" in line:  # an existing model (calibrate writes over it in place, as the README shows)
        named = name == "controls" or "--control" in line  # these need a model with named controls
        shutil.copy(inputs.expression_checkpoint() if named else inputs.checkpoint, tmp_path / "model.safetensors")
    if name == "calibrate":  # a random tiny model's renders do not turn: its measurement is stubbed (the real
        # one runs on real clips in tests/eval/test_calibrate.py)
        from mmfa_studio.eval import calibrate

        measured = {axis: {-10.0: -7.0, 10.0: 7.0} for axis in ("yaw", "pitch", "roll")}
        monkeypatch.setattr(calibrate, "measure_pose_response",
                            lambda engine, videos: calibrate.PoseResponse(sources=1, measured=measured))
    if name == "live":  # no virtual camera exists here: a fake backend records the frames (tests/cli/test_live.py)
        from engine.virtual_cameras import fake_pyvirtualcam

        monkeypatch.setitem(sys.modules, "pyvirtualcam", fake_pyvirtualcam())
    args = RECIPES[name](words, inputs)
    if "--resume" in args:  # the README's resume continues a run: start one first
        first = option(option(list(args), "--resume", None), "--max-steps", "1")
        assert run_entry(first) == 0, capsys.readouterr().err
    code = run_entry(args)
    out, err = capsys.readouterr()
    assert code == 0, f"{' '.join(args)}\n{err[-2000:]}"
    missing = [w for w in args if w.startswith(str(tmp_path)) and Path(w).suffix and not Path(w).exists()]
    assert not missing, f"{' '.join(args)} did not write {missing}"
