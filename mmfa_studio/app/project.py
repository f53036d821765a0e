"""Project files: the source photo, the keyframes and the settings, as JSON.

Saved atomically; loading validates everything and raises :class:`ProjectError` with one line that names the
problem (the window shows it in a dialog).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic

FORMAT = "mmfa-studio-project/1"


class ProjectError(ValueError):
    """The project file is missing, not JSON, or holds invalid values."""


@dataclass
class ProjectSettings:
    fps: float = 25.0
    duration: float = 4.0
    paste_back: bool = False


@dataclass
class Project:
    source_path: str | None
    face_index: int = 0
    keyframes: list[tuple[float, Any]] = field(default_factory=list)  # (seconds, Motion)
    settings: ProjectSettings = field(default_factory=ProjectSettings)
    current: Any = None  # the motion being edited


def save_project(path: str | Path, project: Project) -> None:
    path = Path(path)
    source = project.source_path
    if source:
        # Relative to the project's folder when the photo sits beside or below it (projects can be moved).
        try:
            source = str(Path(source).resolve().relative_to(path.resolve().parent))
        except ValueError:
            source = str(Path(source).resolve())
    data = {
        "format": FORMAT,
        "source": {"path": source, "face_index": project.face_index},
        "settings": {
            "fps": project.settings.fps,
            "duration": project.settings.duration,
            "paste_back": project.settings.paste_back,
        },
        "keyframes": [{"time": t, "motion": m.to_dict()} for t, m in project.keyframes],
        "current": project.current.to_dict() if project.current is not None else None,
    }
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def _number(value: Any, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProjectError(f"{where} must be a number, not {value!r}")
    if not lo <= value <= hi:
        raise ProjectError(f"{where} must be between {lo:g} and {hi:g}, not {value:g}")
    return float(value)


def _motion(data: Any, where: str, motion_type: type, latent_dim: int | None) -> Any:
    if not isinstance(data, dict):
        raise ProjectError(f"{where} must be an object")
    try:
        motion = motion_type.from_dict(data)
        motion.validate()
    except (ValueError, TypeError, KeyError) as exc:
        raise ProjectError(f"{where}: {exc}") from None
    if latent_dim is not None and motion.expression is not None and len(motion.expression) != latent_dim:
        raise ProjectError(
            f"{where}: the expression has {len(motion.expression)} values but this model uses {latent_dim}"
        )
    return motion


def load_project(path: str | Path, motion_type: type, latent_dim: int | None = None) -> Project:
    """Read and validate a project. ``motion_type``: the engine's Motion; ``latent_dim``: the loaded model's."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProjectError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"cannot read {path}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProjectError(f"{path.name} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ProjectError(f"{path.name} is not an MMFA Studio project (format {data.get('format') if isinstance(data, dict) else None!r})")

    source = data.get("source") or {}
    if not isinstance(source, dict):
        raise ProjectError("source must be an object")
    source_path = source.get("path")
    if source_path is not None and not isinstance(source_path, str):
        raise ProjectError("source.path must be a string")
    if source_path and not Path(source_path).is_absolute():
        source_path = str((path.parent / source_path).resolve())
    face_index = source.get("face_index", 0)
    if isinstance(face_index, bool) or not isinstance(face_index, int) or face_index < 0:
        raise ProjectError(f"source.face_index must be a non-negative integer, not {face_index!r}")

    raw_settings = data.get("settings") or {}
    if not isinstance(raw_settings, dict):
        raise ProjectError("settings must be an object")
    settings = ProjectSettings(
        fps=_number(raw_settings.get("fps", 25.0), "settings.fps", 1, 120),
        duration=_number(raw_settings.get("duration", 4.0), "settings.duration", 0.04, 3600),
        paste_back=bool(raw_settings.get("paste_back", False)),
    )

    raw_keys = data.get("keyframes", [])
    if not isinstance(raw_keys, list):
        raise ProjectError("keyframes must be a list")
    keyframes: list[tuple[float, Any]] = []
    for i, key in enumerate(raw_keys):
        if not isinstance(key, dict):
            raise ProjectError(f"keyframe {i + 1} must be an object")
        t = _number(key.get("time"), f"keyframe {i + 1} time", 0.0, settings.duration)
        keyframes.append((t, _motion(key.get("motion"), f"keyframe {i + 1} motion", motion_type, latent_dim)))
    current = data.get("current")
    current_motion = _motion(current, "current motion", motion_type, latent_dim) if current is not None else None
    return Project(
        source_path=source_path or None,
        face_index=face_index,
        keyframes=sorted(keyframes, key=lambda k: k[0]),
        settings=settings,
        current=current_motion,
    )
