"""atomic_path: the file appears only on success, with open()'s permissions, without touching the umask."""

import os
import stat
from pathlib import Path

import pytest

from mmfa_studio.atomic import atomic_path, write_text_atomic


def test_success_failure_and_permissions(tmp_path):
    target = tmp_path / "a.txt"
    old = os.umask(0o027)
    try:
        write_text_atomic(target, "hello")
    finally:
        os.umask(old)
    assert target.read_text() == "hello" and stat.S_IMODE(target.stat().st_mode) == 0o640
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "hello" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the umask from /proc")
def test_the_umask_is_never_changed_while_writing(tmp_path, monkeypatch):
    """Setting the umask to 0 for a moment would make other threads' new files world-writable."""
    def no_umask_changes(mask):
        raise AssertionError(f"os.umask({mask:o}) called")

    monkeypatch.setattr(os, "umask", no_umask_changes)
    write_text_atomic(tmp_path / "b.txt", "x")
    assert (tmp_path / "b.txt").read_text() == "x"


def test_data_is_synced_before_the_rename(tmp_path, monkeypatch):
    """A power loss right after the rename must not leave an empty file under the target's name."""
    import os

    from mmfa_studio import atomic

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    atomic.write_text_atomic(tmp_path / "note.txt", "kept")
    assert (tmp_path / "note.txt").read_text() == "kept"
    assert events[:2] == ["fsync", "replace"]


def test_a_link_is_written_through(tmp_path):
    real = tmp_path / "models" / "model.bin"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    with atomic_path(link) as tmp:
        tmp.write_bytes(b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"
