"""What every config dataclass shares: one-line field checks (``ConfigError`` naming the field and the value) and
the JSON round-trip mixin (``to_dict`` / ``from_dict`` / ``to_json`` / ``from_json`` / ``save`` / ``load``).

Package-private helpers for ``musicgen.config`` and ``musicgen.config_sample``; the configs themselves live there.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, TypeVar

from musicgen.errors import ConfigError

T = TypeVar("T")
MAX_VOICES = 64  # largest TokenizerConfig.voices (config re-exports it; a bound more than one config checks)


def _check(cond: bool, name: str, expected: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"{name}: expected {expected}, got {value!r}")


def _positive_int(name: str, value: Any) -> None:
    _check(isinstance(value, int) and not isinstance(value, bool) and value > 0, name, "a positive integer", value)


class _JsonConfig:
    """Mixin: ``to_dict`` / ``from_dict`` / ``to_json`` / ``from_json`` / ``save`` / ``load``."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[T], data: dict) -> T:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        """Write ``to_json()`` to ``path`` atomically (a temporary file beside it, then a rename)."""
        from musicgen.safeio import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls: type[T], path: str | Path) -> T:
        return cls.from_json(Path(path).read_text())

    def replace(self: T, **changes) -> T:
        return dataclasses.replace(self, **changes)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
