"""Name -> class registries: the names a YAML file uses for aligners, rewards, base models and prompt sets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of factories; `register` is a decorator, `get` raises a ValueError naming the choices."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._summaries: dict[str, str] = {}

    def register(self, name: str, summary: str | None = None) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            doc = summary or (getattr(obj, "__doc__", None) or "").strip().splitlines()
            self._summaries[name] = doc if isinstance(doc, str) else (doc[0] if doc else "")
            return obj

        return decorator

    def get(self, name: str) -> T:
        if name not in self._entries:
            _load_catalogue(self.kind, until=lambda: name in self._entries)
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none registered"
            raise ValueError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def summary(self, name: str) -> str:
        return self._summaries.get(name, "")

    def __contains__(self, name: object) -> bool:
        if name not in self._entries:
            _load_catalogue(self.kind, until=lambda: name in self._entries)
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        _load_catalogue(self.kind)
        return sorted(self._entries)


def _load_catalogue(kind: str, until: Callable[[], bool] = lambda: False) -> None:
    """Import the modules registering `kind` in turn until `until()` holds (all of them by default).

    A name resolves whatever was imported before, and checking a toy-world file does not import every
    real model's and reward's libraries.
    """
    from vaderbench.catalogue import load_all

    load_all(until, kind)


ALIGNERS: Registry = Registry("aligner")
REWARDS: Registry = Registry("reward")
MODELS: Registry = Registry("base model")
PROMPT_SETS: Registry = Registry("prompt set")
