"""Where a training process runs: DDP ranks, device and mixed precision, stop signals, section timing.

Nothing here knows the model or the losses; the trainer asks a :class:`Runtime` for collectives and autocast,
and a :class:`StopSignals` whether the user (or a cluster) asked it to stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..devices import cpu_has_fast_bf16
from ..devices import resolve_device as find_device


class Timer:
    """Accumulates wall time per named section; CUDA work is synchronised at each boundary (benchmarks only)."""

    def __init__(self, device: torch.device | None = None, enabled: bool = True):
        self.enabled = enabled
        self.device = device
        self.totals: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.totals[name] += time.perf_counter() - start

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def reset(self) -> None:
        self.totals.clear()


NO_TIMER = Timer(enabled=False)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The training device (:func:`mmfa_studio.devices.resolve_device`; 'auto' never picks MPS, whose autocast
    and DDP support training does not rely on, though ``--device mps`` may), made the current CUDA device."""
    device = find_device(name, local_rank, auto_mps=False)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.amp`` on ``device`` (None = full fp32)."""
    if mode == "off":
        return None
    if mode == "fp16":
        if device.type != "cuda":
            raise ValueError("train.amp: fp16 needs CUDA (use bf16 on CPU)")
        return torch.float16
    if mode == "bf16":
        return torch.bfloat16
    # auto
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if device.type != "cpu" or cpu_has_fast_bf16() else None  # emulated bf16 is 30× slower


@dataclass
class Runtime:
    """This process's place in the run (rank of world, under ``torchrun``) and its device and precision."""

    rank: int
    local_rank: int
    world: int
    device: torch.device
    amp_dtype: torch.dtype | None  # None: full fp32
    owns_process_group: bool = False  # this process started it, so it also shuts it down

    @classmethod
    def start(cls, device: str, amp: str) -> Runtime:
        """Join the process group when ``torchrun`` set WORLD_SIZE > 1 (NCCL on CUDA, gloo on CPU), pick the
        device and the autocast dtype."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        owns = False
        if world > 1 and not dist.is_initialized():
            use_nccl = device != "cpu" and torch.cuda.is_available()
            dist.init_process_group(backend="nccl" if use_nccl else "gloo")
            owns = True
        resolved = resolve_device(device, local_rank)
        if resolved.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        return cls(rank, local_rank, world, resolved, resolve_amp(amp, resolved), owns)

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def amp_name(self) -> str:
        return {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def parallel(self, module: nn.Module) -> nn.Module:
        """``module`` under DDP (gradients all-reduced in backward) when distributed, else itself."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def any_rank(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag true on every rank when it is true on one: all ranks stop and checkpoint at the same step."""
        if not self.distributed:
            return flags
        values = torch.tensor([float(f) for f in flags], device=self.device)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return tuple(bool(v) for v in values)

    def mean_over_ranks(self, values: Tensor) -> Tensor:
        if not self.distributed:
            return values
        dist.all_reduce(values)
        return values / self.world

    def broadcast_from_main(self, module: nn.Module) -> None:
        """Rank 0's weights and buffers to every rank (after work each rank did alone)."""
        if self.distributed:
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)

    def close(self) -> None:
        if self.owns_process_group:
            dist.barrier()
            dist.destroy_process_group()


class StopSignals:
    """SIGINT and SIGTERM ask the loop to stop at the next step (and save); a second Ctrl-C stops at once.

    Installed only on the main thread (Python delivers signals there), and only while :meth:`installed` is open.
    """

    def __init__(self) -> None:
        self.received: str | None = None  # the signal's name, once one came

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous: list[tuple[int, Any]] = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous.append((sig, signal.signal(sig, self._handle)))
        try:
            yield
        finally:
            for sig, handler in previous:
                signal.signal(sig, handler)

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.received = signal.Signals(signum).name


def loader_worker_init(_worker_id: int) -> None:
    # A stop signal sent to the whole process group (Ctrl-C, `kill -- -PGID`, a cluster's preemption) must reach
    # only the main process, which finishes the step, saves and then shuts the workers down; a worker killed
    # first would take the run down with it, unsaved. Its own process group keeps it out of such signals while
    # the loader can still terminate it.
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    # Each data-loader worker decodes and warps two small frames: one thread each is fastest overall.
    torch.set_num_threads(1)
    with contextlib.suppress(Exception):
        import cv2

        cv2.setNumThreads(1)


__all__ = ["NO_TIMER", "Runtime", "StopSignals", "Timer", "loader_worker_init", "resolve_amp", "resolve_device"]
