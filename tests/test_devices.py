"""--device names: one definition for the engine and the trainer; every refusal is a one-line DeviceError."""

import pytest
import torch

from mmfa_studio.devices import DeviceError, resolve_device


def test_names_resolve_or_are_refused_in_one_line(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", auto_mps=False) == torch.device("cpu")
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        resolve_device("cuda:0")


def test_cuda_names_take_the_local_rank_and_are_checked_against_the_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda", local_rank=3) == torch.device("cuda", 1)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match="has 2 CUDA GPU"):
        resolve_device("cuda:2")
    with pytest.raises(DeviceError, match="unknown device 'cuda:x'"):
        resolve_device("cuda:x")


def test_amp_auto_uses_bf16_on_a_cpu_only_where_it_is_native(monkeypatch):
    """Emulated bf16 made the CPU training step 30× slower (the perceptual VGG: 92 s against 2.9 s in fp32)."""
    import torch

    from mmfa_studio.train import runtime

    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: False)
    assert runtime.resolve_amp("auto", cpu) is None and runtime.resolve_amp("bf16", cpu) is torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    assert runtime.resolve_amp("auto", cpu) is torch.bfloat16
