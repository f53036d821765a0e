"""Online temporal smoothing (One-Euro filter) for crop boxes, poses and landmarks."""

from __future__ import annotations

import math

import numpy as np


class OneEuroSmoother:
    """One-Euro filter (Casiez et al., CHI 2012) over a vector, causal: each call uses only past values.

    Slow motion is smoothed hard (cut-off ``min_cutoff`` Hz) and fast motion passes with little lag
    (the cut-off rises by ``beta`` × speed). ``values`` may be any shape; ``t`` is in seconds.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, values: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(values, dtype=np.float64)
        if self._x is None or self._t is None or t <= self._t:
            if self._x is not None and self._t is not None and t <= self._t:
                t = self._t + 1e-3  # repeated timestamps: treat as a tiny step rather than dividing by zero
            else:
                self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
                return x.copy()
        dt = t - self._t
        dx = (x - self._x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1.0 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        a = self._alpha(cutoff, dt)
        self._x = a * x + (1.0 - a) * self._x
        self._t = t
        return self._x.copy()
