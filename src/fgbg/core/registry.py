"""A small name -> factory registry for the string choices in params.yaml."""

from __future__ import annotations

from typing import Any, Callable

from fgbg.core.errors import ChoiceError


class Registry:
    """Maps names to callables; an unknown name is an error that lists the valid ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def add(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = fn
            return fn

        return add

    def get(self, name: str, param: str | None = None) -> Callable[..., Any]:
        """The entry `name`; `param` (a params.yaml key) is named in the error when unknown."""
        if name not in self._items:
            where = f"params: {param} = {name!r}: " if param else ""
            raise ChoiceError(
                f"{where}unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}"
            )
        return self._items[name]

    def names(self) -> list[str]:
        """The registered names, sorted: what an unknown name's error lists as valid."""
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
