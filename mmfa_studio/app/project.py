"""Project files: the source photo, the keyframes and the settings, as JSON.

Saved atomically; loading validates everything with the schema keyframe files share (``mmfa_studio.motion``)
and raises only :class:`ProjectError`, with one line that names the problem (the window shows it in a dialog).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..motion import MAX_DURATION, KeyframeAnimation, Motion, json_bool, json_number, json_path, read_json_file

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
    keyframes: list[tuple[float, Motion]] = field(default_factory=list)  # (seconds, motion)
    settings: ProjectSettings = field(default_factory=ProjectSettings)
    current: Motion | None = None  # the motion being edited


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


def load_project(path: str | Path, motion_type: type[Motion] = Motion, latent_dim: int | None = None) -> Project:
    """Read and validate a project; any bad content is a :class:`ProjectError` with one line.

    The keyframes are read by the one keyframe schema, ``KeyframeAnimation.from_json`` (what ``animate``
    reads), and the file and its values by the JSON helpers of ``mmfa_studio.motion``. ``motion_type``: the
    engine's Motion (the same class, re-exported); ``latent_dim``: the loaded model's.
    """
    path = Path(path)
    try:
        return _parse(path, read_json_file(path, "project"), motion_type, latent_dim)
    except ProjectError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError) as exc:
        raise ProjectError(f"{path.name}: {exc}") from None


def _parse(path: Path, data: Any, motion_type: type[Motion], latent_dim: int | None) -> Project:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise ProjectError(f"{path.name} is not an MMFA Studio project (format {_show(found)})")
    unknown = sorted(set(data) - {"format", "source", "settings", "keyframes", "current"})
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(map(_show, unknown[:5]))}")

    source = _object(data.get("source"), "source")
    source_path = source.get("path")
    if source_path is not None:
        source_path = json_path(source_path, "source.path")
    if source_path and not Path(source_path).is_absolute():
        source_path = str((path.parent / source_path).resolve())
    face_index = source.get("face_index", 0)
    if isinstance(face_index, bool) or not isinstance(face_index, int) or not 0 <= face_index <= 99:
        raise ValueError(f"source.face_index must be an integer in [0, 99], not {_show(face_index)}")

    raw_settings = _object(data.get("settings"), "settings")
    settings = ProjectSettings(
        fps=json_number(raw_settings.get("fps", 25.0), "settings.fps", 1, 120),
        duration=json_number(raw_settings.get("duration", 4.0), "settings.duration", 0.04, MAX_DURATION),
        paste_back=json_bool(raw_settings.get("paste_back", False), "settings.paste_back"),
    )

    raw_keys = data.get("keyframes", [])
    keyframes: list[tuple[float, Motion]] = []
    if raw_keys != []:
        animation = KeyframeAnimation.from_json({"keyframes": raw_keys, "fps": settings.fps,
                                                 "duration": settings.duration})
        for i, key in enumerate(animation.keyframes):
            if key.time > settings.duration:
                raise ValueError(f"keyframe {i} at {key.time:g} s is after the project's end "
                                 f"(settings.duration {settings.duration:g} s)")
            keyframes.append((key.time, _checked(key.motion, f"keyframe {i} motion", motion_type, latent_dim)))
    current = data.get("current")
    current_motion = None
    if current is not None:
        current_motion = _checked(Motion.from_dict(current), "current motion", motion_type, latent_dim)
    return Project(source_path=source_path or None, face_index=face_index, keyframes=keyframes, settings=settings,
                   current=current_motion)


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object, not {_show(value)}")
    return value


def _checked(motion: Motion, where: str, motion_type: type[Motion], latent_dim: int | None) -> Motion:
    try:
        motion.validate(latent_dim)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return motion if motion_type is Motion else motion_type(**vars(motion))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"
