from dataclasses import replace

import pytest
import torch

from mmfa_studio.checkpoint import CheckpointError, load_model, read_info, save_model
from mmfa_studio.model import MMFA


def test_save_load_is_bit_exact_and_carries_config(tmp_path, tiny_config):
    torch.manual_seed(0)
    model = MMFA(tiny_config)
    path = tmp_path / "m.safetensors"
    save_model(path, model, {"steps": 12})
    loaded, info = load_model(path)
    assert info.config == tiny_config and info.metadata == {"steps": 12}
    ref = model.state_dict()
    assert all(torch.equal(ref[k], v) for k, v in loaded.state_dict().items())
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp file left


def test_truncated_checkpoint_is_refused(tmp_path, tiny_checkpoint):
    data = tiny_checkpoint.read_bytes()
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_model(bad)
    bad.write_bytes(data[:20])
    with pytest.raises(CheckpointError, match="truncated header"):
        load_model(bad)


def test_garbage_and_missing_files_are_refused(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\x00" * 8 + b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
        read_info(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope.safetensors")


def test_pickle_file_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.safetensors"
    torch.save({"x": Evil()}, path)
    with pytest.raises(CheckpointError):
        load_model(path)
    assert not marker.exists()


def test_other_safetensors_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not an MMFA Studio checkpoint"):
        load_model(path)


def test_mismatched_architecture_is_refused(tmp_path, tiny_config, tiny_checkpoint):
    other = replace(tiny_config, num_keypoints=tiny_config.num_keypoints + 1)
    with pytest.raises(CheckpointError, match="different architecture.*num_keypoints"):
        load_model(tiny_checkpoint, expect=other)
    # weights that don't fit the config stored beside them
    from safetensors.torch import load_file, save_file
    tensors = load_file(str(tiny_checkpoint))
    key = next(k for k in tensors if k.endswith("heatmap.weight"))
    tensors[key] = torch.zeros(1, 1, 1, 1)
    meta = __import__("safetensors").safe_open(str(tiny_checkpoint), "pt").metadata()
    path = tmp_path / "mismatch.safetensors"
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_model(path)
