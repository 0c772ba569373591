"""A small name -> constructor registry shared by tasks, backbones, methods and metrics.

Modelled on timm's ``register_model`` / ``create_model`` / ``list_models``: each kind
of component gets one :class:`Registry`, components register themselves with a
decorator, and callers look them up by a lowercase snake_case name that is safe to
use as a Snakemake wildcard.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.]*$")


class UnknownNameError(KeyError):
    """Raised when a name is not registered; the message lists the valid choices."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want plain text.
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps names to constructors for one kind of component.

    Args:
        kind: What the registry holds, used in error messages ("method", "task").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._metadata: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **metadata: Any) -> Callable[[T], T]:
        """Returns a decorator that registers its argument under ``name``.

        Args:
            name: Lowercase snake_case name (dots allowed for weight tags).
            **metadata: Static facts about the entry that must be known without
                building it (for example a task's modality), read by ``metadata``.

        Raises:
            ValueError: If the name is malformed or already registered.
        """
        if not NAME_PATTERN.match(name):
            raise ValueError(
                f"{self.kind} name {name!r} must be lowercase letters, digits, '_' or '.'"
            )

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            self._metadata[name] = dict(metadata)
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Returns the registered constructor.

        Raises:
            UnknownNameError: If ``name`` is not registered; lists valid names.
        """
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; valid choices: {', '.join(self.names())}"
            ) from None

    def metadata(self, name: str) -> dict[str, Any]:
        """Returns the static metadata given at registration."""
        self.get(name)
        return self._metadata[name]

    def names(self, pattern: str = "*") -> list[str]:
        """Returns the sorted registered names matching a shell-style pattern."""
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries
