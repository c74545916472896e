"""A registry maps a config option name to the component that implements it.

Each component family (arrival processes, length distributions, schedulers,
latency models, KV allocation modes, routers, ...) owns one :class:`Registry`.
The registry is the single source of truth for the allowed values of its
config key, so the error for an unknown name always lists exactly what exists.

The plug-in contract: a family member is a class derived from
:class:`Component`, registered by its config name. It lists the settings it
reads (``params``) and checks their values (``check``); the family's own base
class says how it builds or runs itself. Validation is then one call per
family, :meth:`Registry.check`, and adding a member is one class in one file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Generic, TypeVar

from simulator.errors import ConfigError

T = TypeVar("T")


class Component:
    """A member of a component family: registered under its config name (``name``)."""

    name: ClassVar[str] = ""
    #: the settings of its config node it requires (``None`` there is an error)
    params: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check(cls, spec: Any, key: str) -> None:
        """Raise :class:`ConfigError` for a bad value of this member's settings under ``key``."""


class Registry(Generic[T]):
    def __init__(self, key: str, what: str):
        self.key = key  # the config key that selects an entry, e.g. "scheduler.policy"
        self.what = what  # a noun for messages, e.g. "scheduling policy"
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._entries:
                raise RuntimeError(f"{self.what} {name!r} registered twice")
            if isinstance(obj, type) and issubclass(obj, Component):
                obj.name = name
            self._entries[name] = obj
            return obj

        return deco

    def check(self, name: str, spec: Any, key: str) -> Any:
        """Validate ``spec`` (the config node at ``key``) for the member ``name``; return the member.

        An unknown name lists the choices; a missing required setting names
        them all; then the member checks its own values.
        """
        selector = f"{key}.{self.key.rsplit('.', 1)[-1]}"  # e.g. workload.prompt_tokens.dist
        if name not in self._entries:
            raise ConfigError(
                f"{selector}={name!r} is not a known {self.what}; choose one of: {', '.join(self.names())}."
            )
        member = self._entries[name]
        params = getattr(member, "params", ())
        missing = [p for p in params if getattr(spec, p, None) is None]
        if missing:
            raise ConfigError(
                f"{selector}={name} needs {', '.join(f'{key}.{p}' for p in params)}; missing: {', '.join(missing)}."
            )
        if isinstance(member, type) and issubclass(member, Component):
            member.check(spec, key)
        return member

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
