"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A crash, a cancel or an exception leaves the target untouched and no temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder (same suffix); on success it replaces ``target``.

    The parent folder must exist and be writable; otherwise an ``OSError`` names it.
    """
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"folder {parent} does not exist")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{target.suffix}", dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes the file 0600; give it the permissions a plain open() would (0666 minus the umask).
        os.chmod(tmp, 0o666 & ~_current_umask())
        _fsync_file(tmp)  # the data reaches the disk before the rename, so a power loss cannot leave an empty target
        os.replace(tmp, target)
        _fsync_folder(parent)  # and the rename itself is durable
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_folder(folder: Path) -> None:
    """Best effort: some platforms (Windows) and file systems cannot open or sync a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _current_umask() -> int:
    """The process umask, read without changing it where the OS allows: setting it to 0 for a moment (the only
    portable way) would let another thread's new files be created world-writable in that window."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0)
    os.umask(umask)
    return umask


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))
