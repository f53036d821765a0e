"""Model checkpoints: safetensors weights with the model config in the header.

Loading never executes code from the file (safetensors holds tensors and a JSON header only) and refuses,
with a one-line message, a file that is not a checkpoint, is truncated, or does not fit the architecture.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .assets import BUNDLED_MODEL  # noqa: F401 - re-exported: the model Engine.load uses by default
from .atomic import atomic_path
from .model import MMFA, ModelConfig

FORMAT = "mmfa-studio/1"


class CheckpointError(ValueError):
    """The file is missing, corrupt, truncated, or holds another architecture."""


@dataclass
class CheckpointInfo:
    path: Path
    config: ModelConfig
    metadata: dict[str, Any] = field(default_factory=dict)  # free-form: steps, data, metrics …


def save_model(path: str | Path, model: MMFA, metadata: dict[str, Any] | None = None) -> None:
    """Write ``model``'s weights and config atomically to ``path`` (a .safetensors file)."""
    header = {
        "format": FORMAT,
        "config": json.dumps(model.cfg.to_dict()),
        "metadata": json.dumps(metadata or {}),
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)


def save_with_metadata(path: str | Path, out: str | Path, updates: dict[str, Any],
                       config: ModelConfig | None = None) -> None:
    """Write checkpoint ``path`` to ``out`` (may be the same file; atomic) with ``updates`` merged into its
    metadata; the tensors are copied unchanged, and so is the config unless a ``config`` that differs only in
    settings without weights is given (e.g. ``head_region_spread``)."""
    info = read_info(path)
    if config is not None:
        MMFA(config).load_state_dict(MMFA(info.config).state_dict())  # the same tensors must fit it
        info.config = config
    tensors = _read_tensors(info)
    header = {"format": FORMAT, "config": json.dumps(info.config.to_dict()),
              "metadata": json.dumps({**info.metadata, **updates})}
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata=header)


def _read_tensors(info: CheckpointInfo) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(info.path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{info.path} is corrupt or truncated: {exc}") from None


def read_info(path: str | Path) -> CheckpointInfo:
    """The config and metadata of a checkpoint, without loading its weights."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if size <= 0 or size > 100_000_000 or size + 8 > path.stat().st_size:
                raise CheckpointError(f"{path} is not a safetensors checkpoint (bad or truncated header)")
            header = json.loads(f.read(size))
        meta = header.get("__metadata__") or {}
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not an MMFA Studio checkpoint (format {meta.get('format')!r})")
        config = ModelConfig.from_dict(json.loads(meta["config"]))
        extra = json.loads(meta.get("metadata", "{}"))
        if not isinstance(extra, dict):
            raise TypeError("its metadata is not a JSON object")
    except CheckpointError:
        raise
    # AttributeError: a header (or its metadata) that is JSON but not an object
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not a valid MMFA Studio checkpoint: {exc}") from None
    return CheckpointInfo(path=path, config=config, metadata=extra)


def load_model(
    path: str | Path, device: str | torch.device = "cpu", expect: ModelConfig | None = None
) -> tuple[MMFA, CheckpointInfo]:
    """Build the model the checkpoint describes and load its weights (eval mode, on ``device``).

    ``expect``: refuse a checkpoint whose config differs (e.g. resuming a run with another architecture).
    """
    info = read_info(path)
    if expect is not None and expect != info.config:
        diff = ", ".join(expect.differences(info.config))
        raise CheckpointError(f"{info.path} holds a different architecture (differs in: {diff})")
    tensors = _read_tensors(info)
    model = MMFA(info.config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensors (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} shape mismatches (e.g. {k}: file {tuple(tensors[k].shape)}, model {tuple(expected[k].shape)})")
        raise CheckpointError(f"{info.path} does not match its architecture: {'; '.join(parts)}")
    model.load_state_dict(tensors)
    return model.to(device).eval(), info
