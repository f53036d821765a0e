"""The desktop app (Qt). Floor 3: it never imports torch or the model itself, so the window opens before the
engine has even been imported, and it reaches the engine only through :mod:`.worker`'s thread.

Where things live:

* ``worker`` — the engine thread and the one job API (submit → ``returned`` / ``errored`` / ``progress``);
  ``jobs`` — the app's jobs (load a model, open a photo, render, expressions, export); ``messages`` — what
  they return;
* ``webcam`` — the live session and its loop (with an optional frame sink, e.g. a virtual camera);
  ``recorder`` — real-time mp4 recording of it;
* ``controllers/`` — one story each: the document (model, photo, recent files), editing (motion, undo,
  keyframes, live renders), projects (and what a dropped or recent file opens), export, the live webcam panel
  and its virtual camera, what the picture shows;
* ``main_window`` builds the widgets and menus and wires them; the widgets are ``editor``, ``view``,
  ``timeline_panel``, ``webcam_panel``, ``status_bar``, ``recent_menu``, ``dialogs``; ``state``, ``commands``,
  ``timeline`` and ``project`` hold the editing state, undo commands, keyframes and the project file format.

A new app job is a dataclass in ``jobs`` submitted from the controller that needs it; no new signal.
"""

from .main import run_app

__all__ = ["run_app"]
