"""MMFA Studio: controllable one-shot face animation.

What lives where (floors: a package imports only from floors below it):

* floor 1 — ``model/``: the pure torch networks, keypoint composition, expression VAE and configs;
  ``face/``: face tracking, crops and paste-back, head pose and landmark measures (no torch);
  ``motion.py``: the user-facing :class:`~mmfa_studio.motion.Motion` and keyframe animation (no torch, so the
  app's timeline and projects use it before the engine has loaded); ``checkpoint.py`` (safetensors checkpoints
  with the config in the header), ``atomic.py`` (atomic file writes), ``perceptual.py`` (the offline VGG trunk).
* floor 2 — ``engine/``: checkpoint → prepared source → render, reenactment, frame sources and video export;
  ``train/``: data preparation, datasets, losses and the training loop.
* floor 3 — ``app/``: the Qt desktop app; ``eval/``: metrics over the engine and the tracker.
* floor 4 — ``cli/``: the ``mmfa-studio`` subcommands.
"""

__version__ = "0.1.0"
