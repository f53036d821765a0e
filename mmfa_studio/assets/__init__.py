"""Where MMFA Studio finds the files it reads by default: the ones shipped inside the package (the model and the
sample portrait, package data of the wheel) and, in a source checkout, the shared development data.

In a checkout the model file here is a link to ``models/mmfa-cpu.safetensors`` (large files live under
``models/``); building the wheel copies the file itself into the package.

The one definition of these paths: everything else imports them from here, so an installed wheel and an
editable checkout find the same files.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from importlib.resources import as_file, files
from pathlib import Path

_extracted = contextlib.ExitStack()  # only used if the package is imported from a zip: files copied out once
atexit.register(_extracted.close)


def _bundled(name: str) -> Path:
    """A real file path for a file shipped in this package (a no-op for an ordinary install)."""
    return _extracted.enter_context(as_file(files(__name__) / name))


BUNDLED_MODEL: Path = _bundled("mmfa-cpu.safetensors")
SAMPLE_PORTRAIT: Path = _bundled("sample_portrait.png")


def _shared_data() -> Path:
    """$MMFA_SHARED_DATA, else ``shared/data`` beside the checkout (never shipped: an installed package usually
    has none, and the tests that need it skip)."""
    default = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return Path(os.environ.get("MMFA_SHARED_DATA", default))


SHARED_DATA: Path = _shared_data()

__all__ = ["BUNDLED_MODEL", "SAMPLE_PORTRAIT", "SHARED_DATA"]
