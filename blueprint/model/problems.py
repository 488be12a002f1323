"""Problem: one thing a config's rules find wrong, with the field to change and what to do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    where: str  # JSON pointer
    message: str
    hint: str | None = None
