"""The desktop app (Qt). Floor 3: talks to the engine only through :mod:`mmfa_studio.app.worker`'s thread and
never imports torch or the model itself, so the window opens before the engine has even been imported."""

from .main import run_app

__all__ = ["run_app"]
