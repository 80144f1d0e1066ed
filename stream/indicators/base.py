"""Indicator: the library face (update / peek / revise) over the engine's own step code."""

from __future__ import annotations

import numpy as np

from .block import COUNT, PREV, VALUE
from .state import JBASE, JLEN, undo


class Indicator:
    """One indicator over one stream. Subclasses set kind, _size and _step (a numba kernel)."""

    kind: int
    _size = None
    _step = None

    @staticmethod
    def _writes(n: int) -> int:
        """Most state slots one step writes for period n (the undo journal holds two steps)."""
        return 8

    def __init__(self, period: int) -> None:
        if int(period) != period or period < 1:
            raise ValueError(f"{type(self).__name__}: period must be an integer >= 1, got {period}")
        self.period = int(period)
        self._o = JBASE + 2 * 2 * self._writes(self.period)  # update, then peek
        self._S = np.zeros((1, self._o + self._size(self.period)))
        self._S[0, self._o + VALUE] = np.nan
        self._S[0, self._o + PREV] = np.nan

    def _apply(self, x: float, mark: int) -> float | None:
        self._S[0, JLEN] = self._step(self._S, 0, self._o, self.period, float(x), mark)
        return self.value

    def update(self, x: float) -> float | None:
        """Add a new input; the new value, or None during warm-up."""
        return self._apply(x, 0)

    def peek(self, x: float) -> float | None:
        """The value input x would give, leaving state unchanged."""
        mark = int(self._S[0, JLEN])
        v = self._apply(x, mark)
        undo(self._S, 0, mark)
        return v

    def revise(self, x: float) -> float | None:
        """Replace the latest input with x (as if x had come instead)."""
        if self._S[0, self._o + COUNT] == 0:
            raise ValueError("revise() before any update()")
        undo(self._S, 0, 0)
        return self._apply(x, 0)

    @property
    def value(self) -> float | None:
        v = self._S[0, self._o + VALUE]
        return None if v != v else float(v)

    @property
    def ready(self) -> bool:
        return self.value is not None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.period}) = {self.value}"
