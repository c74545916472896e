"""A registry maps a config option name to the component that implements it.

Each component family (arrival processes, length distributions, schedulers,
latency models, KV allocation modes) owns one :class:`Registry`. The registry
is the single source of truth for the allowed values of its config key, so
the error for an unknown name always lists exactly what exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from simulator.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, key: str, what: str):
        self.key = key  # the config key that selects an entry, e.g. "scheduler.policy"
        self.what = what  # a noun for messages, e.g. "scheduling policy"
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._entries:
                raise RuntimeError(f"{self.what} {name!r} registered twice")
            self._entries[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                f"{self.key}={name!r} is not a known {self.what}; choose one of: {', '.join(self.names())}."
            ) from None

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
