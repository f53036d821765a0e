"""Helpers of the safety tests: run the CLI in-process and check its promise (exit 0 or 2, one line, no
traceback, nothing left behind)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from mmfa_studio.cli import main


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``mmfa-studio ARGV``, run in-process (SystemExit caught, e.g. --help)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return code, out, err


def refusal(err: str) -> str:
    """The one line a refused command prints (Python's stderr: native libraries' logs go to fd 2 directly)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("mmfa-studio"), err
    return lines[0]


def leftovers(folder: Path, before: set[str]) -> list[str]:
    """Files that appeared in ``folder`` (temporary .part files included)."""
    return sorted({p.name for p in folder.iterdir()} - before)


def write_safetensors(path: Path, header: dict, data: bytes = b"") -> Path:
    """A safetensors file with exactly this header (8-byte length, JSON) and data, for hostile headers."""
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


@pytest.fixture(autouse=True, scope="session")
def _warm_cli():
    """Import the commands once, so that the times measured are the checks', not the first import of torch."""
    from mmfa_studio.cli import build_parser

    build_parser()


@pytest.fixture
def garbage_checkpoint(tmp_path) -> Path:
    """A checkpoint that is refused at once: commands get as far as loading the model, and no further."""
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"\x00" * 64)
    return path
