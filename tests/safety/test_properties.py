"""Property tests (hypothesis): random numbers, strings and JSON shapes thrown at every CLI option, keyframe
file, project file and checkpoint header. The promise each asserts: exit 0 or 2 (or the module's own error
type), one line on stderr, no traceback, nothing left in the output folder after a refusal, seconds not minutes,
and the process's peak memory raised by under 2 GB. All run in-process (the CLI's main(argv)), so together they
take well under a minute; ``max_examples`` is sized for that on a loaded 2-core machine."""

from __future__ import annotations

import json
import math
import os
import resource
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import leftovers, run_cli, write_safetensors

PER_CASE_S = 10.0
MAX_RSS_KB = 2 * 2**20  # 2 GB: how far one case may raise the process's peak memory


def _peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
FUZZ = settings(deadline=None, database=None, derandomize=True,  # the same cases each run: a suite, not a hunt
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
# Commands fuzzed: all but the GUI, training (its own engineer's) and bench (no required input: with valid
# options it benchmarks for minutes, by design).


def fuzz(examples: int) -> settings:
    """``examples`` fixed cases in the suite; MMFA_FUZZ_SCALE=N runs N times as many random ones (a hunt)."""
    scale = float(os.environ.get("MMFA_FUZZ_SCALE", "1"))
    return settings(FUZZ, max_examples=max(1, int(examples * scale)), derandomize=scale == 1)


COMMANDS = ("render", "animate", "reenact", "interpolate", "crop", "prepare", "evaluate", "calibrate")

# -- values ---------------------------------------------------------------------------------------------------
# Shells cannot pass NUL bytes or lone surrogates in argv; everything else can arrive.
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
number_text = st.one_of(
    st.integers(-10**30, 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "-inf", "1e308", "-1e-320", "0", "-0", "1", "2", "16", "99999999999999999999", "0x10",
                     "1_000", "", " ", "--", "3.5", "-1", "1e3", "65", "4097"]),
)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**25, 10**25),
                        st.floats(allow_nan=False, allow_infinity=False), st.floats(), text)
json_value = st.recursive(json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                               st.dictionaries(text, inner, max_size=5)),
                          max_leaves=25)


@pytest.fixture(scope="module")
def world(tmp_path_factory, sample_portrait):
    """Inputs of every kind (a real portrait, a faceless photo, garbage, a folder, JSON) and an output folder."""
    import cv2
    import numpy as np

    root = tmp_path_factory.mktemp("fuzz")
    inputs = root / "in"
    inputs.mkdir()
    (inputs / "face.png").write_bytes(sample_portrait.read_bytes())
    cv2.imwrite(str(inputs / "noface.png"), np.full((48, 48, 3), 120, np.uint8))
    (inputs / "garbage.safetensors").write_bytes(b"\x00" * 64)
    (inputs / "keys.json").write_text('{"keyframes": [{"time": 0}, {"time": 0.2, "motion": {"yaw": 5}}]}')
    (inputs / "clips.txt").write_text("a.mp4\n")
    (inputs / "folder").mkdir()
    out = root / "out"
    out.mkdir()
    return {"root": root, "in": inputs, "out": out}


def _commands():
    from mmfa_studio.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {name: sub.choices[name] for name in COMMANDS}


@st.composite
def argvs(draw, world, commands):
    """A command line: each positional and a random subset of the options, each value hostile or plausible."""
    name = draw(st.sampled_from(COMMANDS))
    parser = commands[name]
    writes = set(parser._defaults.get("writes", ()))
    ins = [str(world["in"] / n) for n in ("face.png", "noface.png", "garbage.safetensors", "keys.json", "folder",
                                          "missing.png", "clips.txt")]
    outs = [str(world["out"] / n) for n in ("o.png", "o.jpg", "o.mp4", "o.txt", "o.json", "sub/o.png", "")]
    outs += [str(world["in"] / "face.png")]  # an input as the output: must be refused, the input kept

    def value(action) -> str:
        if action.dest in writes:
            return draw(st.sampled_from(outs))
        if action.choices:
            return draw(st.one_of(st.sampled_from(sorted(map(str, action.choices))), text))
        if action.type not in (None, str):
            return draw(number_text)
        return draw(st.one_of(st.sampled_from(ins), text, number_text))

    argv = [name]
    for action in parser._actions:
        if action.dest in ("help",):
            continue
        if not action.option_strings:
            argv.append(value(action))
        elif action.required or draw(st.booleans()):
            argv.append(draw(st.sampled_from(action.option_strings)))
            if action.nargs != 0:
                argv.append(value(action))
    if "checkpoint" in {a.dest for a in parser._actions} and name not in ("calibrate",):
        argv += ["--checkpoint", str(world["in"] / "garbage.safetensors")]  # the model is where the fuzz stops
    return argv


def _promise(code: int, err: str, seconds: float, world, before: set[str], peak_before: int) -> None:
    assert code in (0, 2), err
    assert "Traceback" not in err and "internal error" not in err, err
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("mmfa-studio"), err
        assert leftovers(world["out"], before) == [], err
    assert not [p for p in world["out"].rglob("*.part*")], "a temporary file was left"
    assert seconds < PER_CASE_S, seconds
    assert _peak_kb() - peak_before < MAX_RSS_KB


def test_every_cli_option_takes_any_value(world, capsys):
    commands = _commands()
    face = (world["in"] / "face.png").read_bytes()

    @fuzz(80)
    @given(argv=argvs(world, commands))
    def check(argv):
        before = {p.name for p in world["out"].iterdir()}
        start, peak = time.perf_counter(), _peak_kb()
        code, _, err = run_cli(capsys, *argv)
        _promise(code, err, time.perf_counter() - start, world, before, peak)
        assert (world["in"] / "face.png").read_bytes() == face

    check()


# -- keyframe files -------------------------------------------------------------------------------------------
motion_field = st.sampled_from(["yaw", "pitch", "roll", "scale", "tx", "ty", "tz", "expression",
                                "expression_strength", "relative", "bogus"])
plausible_keyframes = st.fixed_dictionaries(
    {"keyframes": st.lists(st.fixed_dictionaries(
        {"time": st.one_of(st.floats(0, 10), json_scalar)},
        optional={"motion": st.dictionaries(motion_field, st.one_of(json_scalar, st.lists(json_scalar, max_size=6)),
                                            max_size=4)}), max_size=6)},
    optional={"fps": json_scalar, "duration": json_scalar, "interpolation": st.one_of(st.sampled_from(
        ["linear", "slerp"]), json_scalar)})


def _json_text(data) -> str:
    return json.dumps(data, allow_nan=True)  # Python writes NaN/Infinity, as a careless tool would


@fuzz(150)
@given(data=st.one_of(plausible_keyframes, json_value))
def test_any_keyframe_json_is_an_animation_or_one_value_error(data):
    from mmfa_studio.motion import KeyframeAnimation

    start = time.perf_counter()
    try:
        animation = KeyframeAnimation.from_json(data).validate(4)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        assert 1 <= animation.frame_count <= 3600 * 240 + 1
        assert math.isfinite(animation.total_duration)
    assert time.perf_counter() - start < 1.0


def test_any_keyframe_file_through_animate(world, capsys):
    @fuzz(40)
    @given(data=st.one_of(plausible_keyframes, json_value), raw=st.one_of(st.none(), st.binary(max_size=64)))
    def check(data, raw):
        keys = world["root"] / "fuzz_keys.json"
        keys.write_bytes(raw if raw is not None else _json_text(data).encode())
        before = {p.name for p in world["out"].iterdir()}
        start, peak = time.perf_counter(), _peak_kb()
        code, _, err = run_cli(capsys, "animate", world["in"] / "face.png", keys, "-o", world["out"] / "k.mp4",
                               "--checkpoint", world["in"] / "garbage.safetensors")
        _promise(code, err, time.perf_counter() - start, world, before, peak)
        assert code == 2  # the keyframes, or else the garbage checkpoint, are refused

    check()


# -- project files --------------------------------------------------------------------------------------------
plausible_project = st.fixed_dictionaries(
    {"format": st.one_of(st.just("mmfa-studio-project/1"), json_scalar)},
    optional={"source": st.one_of(st.fixed_dictionaries({}, optional={"path": st.one_of(text, json_scalar),
                                                                      "face_index": json_scalar}), json_value),
              "settings": st.one_of(st.fixed_dictionaries({}, optional={"fps": json_scalar, "duration": json_scalar,
                                                                        "paste_back": json_scalar}), json_value),
              "keyframes": st.one_of(plausible_keyframes.map(lambda d: d["keyframes"]), json_value),
              "current": st.one_of(st.dictionaries(motion_field, json_scalar, max_size=3), json_value)})


def test_any_project_file_is_a_project_or_one_project_error(tmp_path_factory):
    from mmfa_studio.app.project import Project, ProjectError, load_project
    from mmfa_studio.motion import Motion

    path = tmp_path_factory.mktemp("projects") / "p.mmfa.json"

    @fuzz(150)
    @given(data=st.one_of(plausible_project, json_value), raw=st.one_of(st.none(), st.binary(max_size=64)))
    def check(data, raw):
        path.write_bytes(raw if raw is not None else _json_text(data).encode())
        start = time.perf_counter()
        try:
            assert isinstance(load_project(path, Motion, latent_dim=4), Project)
        except ProjectError as exc:  # and nothing else
            assert "\n" not in str(exc)
        assert time.perf_counter() - start < 1.0

    check()


# -- checkpoint headers -------------------------------------------------------------------------------------
def test_any_safetensors_header_is_a_model_or_one_checkpoint_error(tmp_path_factory, tiny_checkpoint):
    from mmfa_studio.checkpoint import CheckpointError, load_model

    raw = tiny_checkpoint.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header, data = json.loads(raw[8:8 + size]), raw[8 + size:]
    config = json.loads(header["__metadata__"]["config"])
    names = sorted(k for k in header if k != "__metadata__")
    path = tmp_path_factory.mktemp("headers") / "h.safetensors"
    config_values = st.one_of(json_scalar, st.integers(-10, 10**6), st.lists(st.integers(-5, 5000), max_size=10))
    entry_values = st.one_of(json_value, st.lists(st.integers(-2, 2**40), max_size=4),
                             st.sampled_from(["F32", "F16", "I64", "BOOL", "X9"]))

    @st.composite
    def headers(draw):
        kind = draw(st.sampled_from(["config", "tensor", "metadata", "random"]))
        h = json.loads(json.dumps(header))
        if kind == "config":
            cfg = dict(config)
            for key in draw(st.lists(st.sampled_from(sorted(cfg) + ["bogus"]), min_size=1, max_size=3)):
                cfg[key] = draw(config_values)
            h["__metadata__"]["config"] = json.dumps(cfg, allow_nan=True)
        elif kind == "tensor":
            name = draw(st.sampled_from(names))
            field = draw(st.sampled_from(["shape", "dtype", "data_offsets"]))
            h[name] = {**h[name], field: draw(entry_values)} if draw(st.booleans()) else draw(json_value)
        elif kind == "metadata":
            h["__metadata__"] = draw(st.one_of(json_value, st.dictionaries(
                st.sampled_from(["format", "config", "metadata"]), st.one_of(text, json_value), max_size=3)))
        else:
            h = draw(json_value)
        return h

    @fuzz(50)
    @given(h=headers())
    def check(h):
        write_safetensors(path, h, data)
        start, peak = time.perf_counter(), _peak_kb()
        try:
            load_model(path)
        except CheckpointError as exc:  # and nothing else
            assert "\n" not in str(exc)
        assert time.perf_counter() - start < PER_CASE_S
        assert _peak_kb() - peak < MAX_RSS_KB

    check()
