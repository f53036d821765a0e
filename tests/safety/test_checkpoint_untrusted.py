"""Issue 19, items 4 and 8: a checkpoint is untrusted input, checked before anything is built or allocated."""

from __future__ import annotations

import json
import resource
import time

import pytest
import torch

from mmfa_studio.checkpoint import CheckpointError, load_model, read_info

from .conftest import refusal, run_cli, write_safetensors


def header_of(path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + size]), raw[8 + size:]


def with_config(tiny_checkpoint, tmp_path, **changes):
    header, data = header_of(tiny_checkpoint)
    config = {**json.loads(header["__metadata__"]["config"]), **changes}
    header["__metadata__"]["config"] = json.dumps(config)
    return write_safetensors(tmp_path / "hostile.safetensors", header, data)


@pytest.mark.parametrize("changes, message", [
    ({"appearance_channels": 200_000}, r"appearance_channels = 200000 is out of range \[1, 2048\]"),
    ({"num_keypoints": -3}, r"num_keypoints = -3 is out of range \[1, 256\]"),
    ({"image_size": 10**9}, "image_size"),
    ({"num_keypoints": "15"}, "num_keypoints must be an integer"),
    ({"keypoint_sigma": float("nan")}, "keypoint_sigma must be a finite number"),
    ({"tps_motion": "yes"}, "tps_motion must be true or false"),
    ({"generator_channels": [64] * 100}, "generator_channels must be a list of 1 to 8"),
    ({"generator_channels": [10**6, 8, 8]}, "generator_channels entries"),
    ({"latent_dim": 5}, "does not match its architecture"),  # in bounds, but not the tensors the file holds
])
def test_config_values_are_bounded_before_anything_is_built(tmp_path, tiny_checkpoint, changes, message):
    path = with_config(tiny_checkpoint, tmp_path, **changes)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=message):
        load_model(path)
    assert time.perf_counter() - start < 10


def test_declared_tensors_must_fit_the_architecture_and_the_file(tmp_path, tiny_checkpoint):
    header, data = header_of(tiny_checkpoint)
    name = next(k for k in header if k != "__metadata__")
    # a shape that would allocate 4 TB, in a file of a megabyte
    huge = {**header, name: {**header[name], "shape": [2**20, 2**20]}}
    with pytest.raises(CheckpointError, match="shape mismatches"):
        read_info(write_safetensors(tmp_path / "a.safetensors", huge, data))
    wrong_dtype = {**header, name: {**header[name], "dtype": "F64"}}
    with pytest.raises(CheckpointError, match="shape mismatches"):
        read_info(write_safetensors(tmp_path / "b.safetensors", wrong_dtype, data))
    begin, end = header[name]["data_offsets"]
    bad_range = {**header, name: {**header[name], "data_offsets": [begin, end + 4]}}
    with pytest.raises(CheckpointError, match="byte range"):
        read_info(write_safetensors(tmp_path / "c.safetensors", bad_range, data))
    with pytest.raises(CheckpointError, match="corrupt or truncated"):  # data beyond what the header declares
        read_info(write_safetensors(tmp_path / "d.safetensors", header, data + b"\0" * 64))
    extra = {**header, "evil": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    with pytest.raises(CheckpointError, match="unexpected tensors"):
        read_info(write_safetensors(tmp_path / "e.safetensors", extra, data))


def test_an_oversized_or_deep_header_is_refused_unread(tmp_path):
    path = tmp_path / "big.safetensors"
    path.write_bytes((64 * 2**20).to_bytes(8, "little") + b"{" + b" " * (64 * 2**20))
    with pytest.raises(CheckpointError, match="over the limit"):
        read_info(path)
    deep = tmp_path / "deep.safetensors"
    raw = b"[" * 100_000 + b"]" * 100_000
    deep.write_bytes(len(raw).to_bytes(8, "little") + raw)
    with pytest.raises(CheckpointError, match="nested too deeply|not a valid"):
        read_info(deep)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, tiny_checkpoint, bad):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(tiny_checkpoint))
    key = sorted(tensors)[3]
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = bad
    with safe_open(str(tiny_checkpoint), "pt") as f:
        meta = f.metadata()
    path = tmp_path / "nan.safetensors"
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="NaN or infinite weights"):
        load_model(path)


def test_cli_refuses_a_hostile_checkpoint_in_one_line_fast_and_small(capsys, tmp_path, tiny_checkpoint,
                                                                     sample_portrait):
    path = with_config(tiny_checkpoint, tmp_path, appearance_channels=200_000, motion_channels=200_000)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    code, _, err = run_cli(capsys, "render", sample_portrait, "-o", tmp_path / "o.png", "--checkpoint", path)
    seconds = time.perf_counter() - start
    assert code == 2 and "out of range" in refusal(err)
    assert seconds < 10
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert grown_kb < 500_000  # nothing of the 180 GB the header asks for
    assert not (tmp_path / "o.png").exists()


def test_a_folder_as_checkpoint_says_so(capsys, tmp_path, sample_portrait):
    code, _, err = run_cli(capsys, "render", sample_portrait, "-o", tmp_path / "o.png", "--checkpoint", tmp_path)
    assert code == 2 and "is a folder, not a checkpoint file" in refusal(err)


def test_the_bundled_model_and_a_tiny_one_still_load(tiny_checkpoint):
    from mmfa_studio.checkpoint import BUNDLED_MODEL

    for path in (tiny_checkpoint, BUNDLED_MODEL):
        model, _ = load_model(path)
        assert all(torch.isfinite(p).all() for p in model.state_dict().values())
