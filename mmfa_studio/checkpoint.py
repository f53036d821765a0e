"""Model checkpoints: safetensors weights with the model config in the header.

A checkpoint is untrusted input. Loading never executes code from the file (safetensors holds tensors and a
JSON header only, no pickle) and refuses, with a one-line :class:`CheckpointError`, before anything is
allocated by the file's say-so:

* a header over :data:`MAX_HEADER_BYTES`, not JSON, or nested too deeply;
* a config value of the wrong type or outside the bounds of ``model/config.py`` (``ModelConfig``), or an
  architecture whose weights would exceed :data:`MAX_WEIGHT_BYTES`;
* declared tensors (names, shapes, dtypes, byte ranges) that differ from the ones the config's architecture
  has (worked out on torch's ``meta`` device, which allocates nothing), or that do not add up to the file size;

and, once the (now bounded) weights are read, any NaN or infinite weight (it would render black frames).
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.overrides import TorchFunctionMode

from .assets import BUNDLED_MODEL  # noqa: F401 - re-exported: the model Engine.load uses by default
from .atomic import atomic_path
from .model import MMFA, ModelConfig

# The largest header read (the bundled model's is 23 KB; safetensors itself allows 100 MB, ~1 GB of parsed JSON).
MAX_HEADER_BYTES = 16 * 2**20
# The largest model loaded: vox256, the largest config in use, has 225 MB of weights.
MAX_WEIGHT_BYTES = 2**31
# safetensors dtype names → torch dtypes, for the dtypes a model's state dict can hold
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}

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
    """The weights (read_info has checked what the header declares, so their size is bounded), all finite."""
    try:
        tensors = load_file(str(info.path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{info.path} is corrupt or truncated: {exc}") from None
    bad = sorted(k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all()))
    if bad:
        raise CheckpointError(f"{info.path} holds NaN or infinite weights ({len(bad)} tensors, e.g. {bad[0]}): "
                              "the training run that wrote it diverged; use an earlier checkpoint")
    return tensors


@functools.lru_cache(maxsize=8)
def expected_tensors(config: ModelConfig) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Name → (shape, dtype) of every tensor the architecture ``config`` has, found without allocating it."""
    with torch.device("meta"), _SkipInit():
        model = MMFA(config)
    return {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}


class _SkipInit(TorchFunctionMode):
    """Weight initialisation is pointless on the meta device, and slow there: ``normal_`` has no meta kernel
    and pulls in torch._dynamo (7 s). In-place fills of a meta tensor just return it."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        target = args[0] if args else kwargs.get("tensor")
        name = getattr(func, "__name__", "")
        if (isinstance(target, torch.Tensor) and target.is_meta and name.endswith("_") and not name.startswith("_")
                and (getattr(func, "__module__", "") == "torch.nn.init" or name in _INPLACE_FILLS)):
            return target
        return func(*args, **kwargs)


_INPLACE_FILLS = {"normal_", "uniform_", "zero_", "fill_", "copy_", "bernoulli_", "exponential_", "random_"}


def _check_declared_tensors(path: Path, header: dict[str, Any], header_size: int, file_size: int,
                            config: ModelConfig) -> None:
    """The tensors the header declares must be the architecture's (names, shapes, dtypes) and fill the file."""
    try:
        expected = expected_tensors(config)
    except Exception as exc:  # noqa: BLE001 - a config within bounds that still cannot be built
        raise CheckpointError(f"{path}: its config does not describe a buildable model ({type(exc).__name__}: "
                              f"{str(exc)[:120]})") from None
    weight_bytes = sum(math.prod(shape) * torch.empty((), dtype=dtype, device="meta").element_size()
                       for shape, dtype in expected.values())
    if weight_bytes > MAX_WEIGHT_BYTES:
        raise CheckpointError(f"{path}: its config describes a model of {weight_bytes / 2**30:.1f} GB, over the "
                              f"limit of {MAX_WEIGHT_BYTES / 2**30:.0f} GB")
    declared = {k: v for k, v in header.items() if k != "__metadata__"}
    missing = sorted(set(expected) - set(declared))
    unexpected = sorted(set(declared) - set(expected))
    wrong, ranges = [], []
    for name in sorted(set(expected) & set(declared)):
        entry, (shape, dtype) = declared[name], expected[name]
        if not isinstance(entry, dict):
            raise CheckpointError(f"{path} is corrupt: the entry of tensor {name} is not an object")
        offsets, dtype_name = entry.get("data_offsets"), entry.get("dtype")
        if entry.get("shape") != list(shape) or not isinstance(dtype_name, str) or _DTYPES.get(dtype_name) != dtype:
            wrong.append(f"{name}: file {_short(entry.get('shape'))} {_short(entry.get('dtype'))}, model "
                         f"{list(shape)} {str(dtype).removeprefix('torch.')}")
            continue
        nbytes = math.prod(shape) * torch.empty((), dtype=dtype, device="meta").element_size()
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
                or offsets[1] - offsets[0] != nbytes or offsets[0] < 0):
            raise CheckpointError(f"{path} is corrupt: tensor {name} declares byte range {_short(offsets)}, "
                                  f"not {nbytes} bytes")
        ranges.append(offsets)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensors (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {_short(unexpected[0])})")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches (e.g. {wrong[0]})")
        raise CheckpointError(f"{path} does not match its architecture: {'; '.join(parts)}")
    ranges.sort()
    end = 0
    for start, stop in ranges:  # back to back from 0: no overlap, no hole
        if start != end:
            raise CheckpointError(f"{path} is corrupt: its tensors' byte ranges overlap or leave gaps")
        end = stop
    if 8 + header_size + end != file_size:
        raise CheckpointError(f"{path} is corrupt or truncated: the header declares {8 + header_size + end} bytes, "
                              f"the file has {file_size}")


def _short(value: Any, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def read_info(path: str | Path) -> CheckpointInfo:
    """The config and metadata of a checkpoint, without loading its weights."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a checkpoint file (give the .safetensors file)")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with open(path, "rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            size = int.from_bytes(f.read(8), "little")
            if size <= 0 or size + 8 > file_size:
                raise CheckpointError(f"{path} is not a safetensors checkpoint (bad or truncated header)")
            if size > MAX_HEADER_BYTES:
                raise CheckpointError(f"{path}: its header declares {size} bytes, over the limit of "
                                      f"{MAX_HEADER_BYTES // 2**20} MB; not an MMFA Studio checkpoint")
            header = json.loads(f.read(size))
        if not isinstance(header, dict):
            raise TypeError("its header is not a JSON object")
        meta = header.get("__metadata__") or {}
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not an MMFA Studio checkpoint (format {meta.get('format')!r})")
        config = ModelConfig.from_dict(json.loads(meta["config"]))
        extra = json.loads(meta.get("metadata", "{}"))
        if not isinstance(extra, dict):
            raise TypeError("its metadata is not a JSON object")
    except CheckpointError:
        raise
    except RecursionError:
        raise CheckpointError(f"{path} is not a valid MMFA Studio checkpoint: "
                              "its header is nested too deeply") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    # AttributeError: a header (or its metadata) that is JSON but not an object
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not a valid MMFA Studio checkpoint: {_short(exc, 240)}") from None
    _check_declared_tensors(path, header, size, file_size, config)
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
    tensors = _read_tensors(info)  # read_info checked names, shapes and dtypes against the architecture
    model = MMFA(info.config)
    model.load_state_dict(tensors)
    return model.to(device).eval(), info
