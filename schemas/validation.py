"""Strict conversion between typed dataclass records and JSON-able dicts, naming the bad field."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


class SchemaError(ValueError):
    """A record or config does not match its schema; ``field`` is the dotted path of the bad field."""

    def __init__(self, field: str, message: str):
        self.field = field or "<root>"
        super().__init__(f"{self.field}: {message}")


def _join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


Converter = Callable[[Any, str], Any]
"""``(value, path) -> the value as its type wants it``, raising SchemaError naming ``path``."""


def _scalar(tp: type, expected: str, accepts: tuple[type, ...], cast=None) -> Converter:
    def convert(value: Any, path: str) -> Any:
        # bool is an int to Python, never to a schema (unless the field is a bool)
        if not isinstance(value, accepts) or (tp is not bool and isinstance(value, bool)):
            raise SchemaError(path, expected.format(value=value))
        return cast(value) if cast is not None else value
    return convert


_SCALARS: dict[Any, Converter] = {
    bool: _scalar(bool, "expected true or false, got {value!r:.80}", (bool,)),
    int: _scalar(int, "expected an integer, got {value!r:.80}", (int,)),
    float: _scalar(float, "expected a number, got {value!r:.80}", (int, float), float),
}


def _string(value: Any, path: str) -> Any:
    if not isinstance(value, str):
        raise SchemaError(path, f"expected a string, got {type(value).__name__}")
    return value


@lru_cache(maxsize=None)
def _converter(tp: Any) -> Converter:
    """The converter of one field type, built once per type: the type's structure is read here, not per value."""
    if tp is Any:
        return lambda value, path: value
    if tp is str:
        return _string
    if tp in _SCALARS:
        return _SCALARS[tp]
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        nullable = type(None) in get_args(tp)
        options = [_converter(arg) for arg in get_args(tp) if arg is not type(None)]

        def union(value: Any, path: str) -> Any:
            if value is None:
                if nullable:
                    return None
                raise SchemaError(path, "must not be null")
            if len(options) == 1:
                return options[0](value, path)
            for option in options:
                try:
                    return option(value, path)
                except SchemaError:
                    continue
            raise SchemaError(path, f"expected {_type_name(tp)}, got {value!r:.80}")
        return union
    if origin is Literal:
        allowed = get_args(tp)

        def literal(value: Any, path: str) -> Any:
            if value not in allowed:
                raise SchemaError(path, f"must be one of {', '.join(map(repr, allowed))}, got {value!r:.80}")
            return value
        return literal
    if origin is list:
        (item,) = get_args(tp)
        convert_item = _converter(item)

        def listed(value: Any, path: str) -> Any:
            if not isinstance(value, (list, tuple)):
                raise SchemaError(path, f"expected a list, got {type(value).__name__}")
            return [convert_item(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return listed
    if origin is dict:
        convert_value = _converter(get_args(tp)[1])

        def mapping(value: Any, path: str) -> Any:
            if not isinstance(value, dict):
                raise SchemaError(path, f"expected a mapping, got {type(value).__name__}")
            out = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    raise SchemaError(path, f"keys must be strings, got {k!r:.40}")
                out[k] = convert_value(v, _join(path, k))
            return out
        return mapping
    if dataclasses.is_dataclass(tp):
        # looked up when a value comes, so a record type may name itself
        return lambda value, path: value if isinstance(value, tp) else from_dict(tp, value, path)

    def unsupported(value: Any, path: str) -> Any:  # only a value given to such a field is an error
        raise TypeError(f"unsupported field type {tp!r} at {path}")
    return unsupported


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """How to build and to flatten one record type, worked out once."""

    names: frozenset[str]
    listed: str
    """The init fields, comma-separated, for the unknown-field message."""
    fields: tuple[tuple[str, Converter, bool], ...]
    """(name, converter, required) of each init field, in order."""
    floats: tuple[tuple[str, bool], ...]
    """(name, whether an int value is written as a float) of every field, in order."""


@lru_cache(maxsize=None)
def _plan(cls: type) -> _Plan:
    hints = typing.get_type_hints(cls)
    init = [f for f in dataclasses.fields(cls) if f.init]
    return _Plan(
        names=frozenset(f.name for f in init), listed=", ".join(f.name for f in init),
        fields=tuple((f.name, _converter(hints[f.name]), f.default is dataclasses.MISSING
                      and f.default_factory is dataclasses.MISSING) for f in init),
        floats=tuple((f.name, float in (hints[f.name], *get_args(hints[f.name])))
                     for f in dataclasses.fields(cls)))


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build ``cls`` from a mapping, refusing unknown, missing or mistyped fields."""
    if not isinstance(data, dict):
        raise SchemaError(path, f"expected a mapping for {cls.__name__}, got {type(data).__name__}")
    plan = _plan(cls)
    if not plan.names.issuperset(data):
        unknown = sorted(set(data) - plan.names)
        raise SchemaError(_join(path, unknown[0]), f"unknown field for {cls.__name__} (known: {plan.listed})")
    kwargs = {}
    for name, convert, required in plan.fields:
        if name not in data:
            if required:
                raise SchemaError(_join(path, name), f"missing required field of {cls.__name__}")
            continue
        kwargs[name] = convert(data[name], f"{path}.{name}" if path else name)
    try:
        return cls(**kwargs)
    except SchemaError as exc:
        if path and not exc.field.startswith(path):
            raise SchemaError(_join(path, exc.field), str(exc).split(": ", 1)[1]) from None
        raise


_PLAIN = frozenset({str, int, float, bool, type(None)})


def to_dict(record: Any) -> Any:
    """Turn a record (or nested lists/dicts of records) into plain JSON-able values."""
    kind = type(record)
    if kind in _PLAIN:
        return record
    if dataclasses.is_dataclass(kind):
        out = {}
        for name, as_float in _plan(kind).floats:
            value = getattr(record, name)
            # ints given to float fields serialise as floats, so a record has one canonical JSON form
            out[name] = float(value) if as_float and type(value) is int else to_dict(value)
        return out
    if isinstance(record, (list, tuple)):
        return [to_dict(v) for v in record]
    if isinstance(record, dict):
        return {k: to_dict(v) for k, v in record.items()}
    return record


def to_json(record: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, so equal records give equal bytes."""
    return json.dumps(to_dict(record), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def from_json(cls: type[T], text: str | bytes) -> T:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError("", f"not valid JSON: {exc}") from None
    return from_dict(cls, data)


def require(condition: bool, field: str, message: str) -> None:
    """Raise SchemaError for ``field`` unless ``condition`` holds (used in ``__post_init__``)."""
    if not condition:
        raise SchemaError(field, message)
