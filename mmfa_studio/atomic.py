"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A crash, a cancel or an exception leaves the target untouched and no temporary file behind; a SIGTERM or SIGHUP
does too where the process runs under :func:`unwind_on_signals` (the CLI does). What only SIGKILL or a power
loss can leave, a ``.NAME.XXXXXXXX.partSUFFIX`` beside NAME, the next write of NAME removes (see
:func:`_remove_stale_parts` for why that is safe).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so stale temporary files are left for the user
    fcntl = None  # type: ignore[assignment]

# A temporary file left by a writer that died is removed only when untouched this long as well as unlocked: a
# live writer locks its file right after creating it, and this closes the moment in between.
STALE_AFTER_S = 60.0


class Terminated(BaseException):
    """SIGTERM / SIGHUP, raised in the main thread so that ``finally`` blocks and ``with`` exits run (a
    BaseException, like KeyboardInterrupt, so that no ``except Exception`` swallows it)."""

    def __init__(self, signum: int):
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"stopped by {self.name}")


@contextlib.contextmanager
def unwind_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` (SIGINT already raises KeyboardInterrupt)
    instead of ending the process on the spot, so atomic writes remove their temporary files. A second signal
    while unwinding is ignored, so the clean-up itself is not cut short (SIGKILL still ends it)."""
    names = [name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    stopping = False

    def handler(signum, _frame):
        nonlocal stopping
        if not stopping:
            stopping = True
            raise Terminated(signum)

    try:
        previous = {name: signal.signal(getattr(signal, name), handler) for name in names}
    except ValueError:  # not the main thread: signals cannot be caught here
        yield
        return
    try:
        yield
    finally:
        for name, old in previous.items():
            signal.signal(getattr(signal, name), old)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder (same suffix); on success it replaces ``target``.

    The parent folder must exist and be writable; otherwise an ``OSError`` names it. A symbolic link is written
    through: the file it points to is replaced and the link stays (the bundled model's package path is one).
    """
    target = Path(target)
    if target.is_symlink():
        target = target.resolve()
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"folder {parent} does not exist")
    _remove_stale_parts(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{target.suffix}", dir=parent)
    if not _lock(fd):  # held until the end: tells _remove_stale_parts of other processes that this file is alive
        os.close(fd)  # no locks (Windows): an open handle would only block the rename there
        fd = -1
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
        if fd >= 0:
            os.close(fd)


def _lock(fd: int) -> bool:
    """An exclusive advisory lock on an open file, without waiting; whether it was had."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def part_pattern(target: Path) -> re.Pattern[str]:
    """The names :func:`atomic_path` gives ``target``'s temporary files (mkstemp: 8 random [a-z0-9_])."""
    return re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.part{re.escape(target.suffix)}")


def _remove_stale_parts(target: Path) -> None:
    """Remove temporary files of ``target`` that a killed writer left (SIGKILL, a crash, a power loss).

    Only files that are clearly ours and clearly dead: the exact name pattern of ``target`` (no other file's),
    a regular file (not a link), not locked by a live writer (each holds a lock for its whole write) and not
    modified for :data:`STALE_AFTER_S`. Without locks (Windows) nothing is removed.
    """
    if fcntl is None:
        return
    pattern = part_pattern(target)
    parent = target.parent if str(target.parent) else Path(".")
    try:
        names = [n for n in os.listdir(parent) if pattern.fullmatch(n)]
    except OSError:
        return
    for name in names:
        path = parent / name
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if (os.path.isfile(path) and not os.path.islink(path) and time.time() - st.st_mtime > STALE_AFTER_S
                    and _lock(fd)):
                os.unlink(path)
        except OSError:
            pass
        finally:
            os.close(fd)


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
