"""Capped exponential backoff for reconnecting to a frame source."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """`next()` gives initial, initial*factor, ... capped at `maximum`; `reset()` after success."""

    initial: float = 0.5
    maximum: float = 10.0
    factor: float = 2.0
    _next: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1.0:
            raise ValueError(
                f"backoff needs 0 < initial <= maximum and factor >= 1, got {self}")
        self._next = self.initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * self.factor, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial
