"""Dataclasses from YAML, checked by their annotations: the generic half of fgbg.core.config.

`from_dict` builds a (nested) dataclass from a mapping, rejecting unknown keys (with a "did
you mean") and values of the wrong type, each error naming the key; ints are accepted
where floats are. `read_yaml` reads YAML 1.2, as DVC writes params files.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from ruamel.yaml import YAML

from fgbg.core.errors import ConfigError


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """A ConfigError naming `key`, `value` and what is `allowed`, unless `ok`."""
    if not ok:
        raise ConfigError(f"params: {key} = {value!r} is not allowed; expected {allowed}")


def _type_name(tp: Any) -> str:
    """What a params.yaml value of annotation `tp` may be, in words: "one of 'a', 'b' or null"."""
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, key: str) -> Any:
    """`value` checked against the annotation `tp`; ints are accepted where floats are."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if origin is Literal:
        require(value in get_args(tp), key, value, _type_name(tp))
        return value
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            try:
                return _convert(arg, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"params: {key} = {value!r} has the wrong type; expected {_type_name(tp)}")
    if origin is tuple and len(get_args(tp)) == 2 and get_args(tp)[1] is Ellipsis:
        require(isinstance(value, (list, tuple)), key, value, "a list")
        return tuple(_convert(get_args(tp)[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        args = get_args(tp)
        ok = isinstance(value, (list, tuple)) and len(value) == len(args)
        require(ok, key, value, f"a list of {len(args)} values")
        return tuple(_convert(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        _, vt = get_args(tp)
        require(isinstance(value, dict), key, value, "a mapping of name: value")
        return {str(k): _convert(vt, v, f"{key}.{k}") for k, v in value.items()}
    if tp is type(None):
        require(value is None, key, value, "null")
        return None
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        require(ok, key, value, "a number")
        return float(value)
    if tp is bool:
        require(isinstance(value, bool), key, value, "true or false")
        return value
    if tp is int:
        require(isinstance(value, int) and not isinstance(value, bool), key, value, "an int")
        return value
    require(isinstance(value, tp), key, value, f"a {_type_name(tp)}")
    return value


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """An instance of dataclass `cls` from a mapping; unknown keys are an error."""
    prefix = f"{where}." if where else ""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"params: {where or 'the file'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
            raise ConfigError(
                f"params: unknown key '{prefix}{key}'. Allowed keys"
                f"{' in ' + where if where else ''}: {', '.join(names)}.{hint}"
            )
    kwargs = {k: _convert(hints[k], v, prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def read_yaml(path: str | Path) -> Any:
    """A YAML file read as DVC writes it: YAML 1.2, so `1e-05` and `.5` are floats and `yes` is a string."""
    return YAML(typ="safe", pure=True).load(Path(path).read_text())


