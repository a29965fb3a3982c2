"""Strict conversion between typed dataclass records and JSON-able dicts, naming the bad field."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from functools import lru_cache
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


class SchemaError(ValueError):
    """A record or config does not match its schema; ``field`` is the dotted path of the bad field."""

    def __init__(self, field: str, message: str):
        self.field = field or "<root>"
        super().__init__(f"{self.field}: {message}")


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Union or origin is types.UnionType:
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise SchemaError(path, "must not be null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path)
            except SchemaError as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else SchemaError(path, f"expected {_type_name(tp)}, got {value!r:.80}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise SchemaError(path, f"must be one of {', '.join(map(repr, allowed))}, got {value!r:.80}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise SchemaError(path, f"expected a list, got {type(value).__name__}")
        (item_tp,) = get_args(tp)
        return [_convert(item_tp, v, _join(path, i)) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(path, f"expected a mapping, got {type(value).__name__}")
        key_tp, val_tp = get_args(tp)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise SchemaError(path, f"keys must be strings, got {k!r:.40}")
            out[k] = _convert(val_tp, v, _join(path, k))
        return out
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise SchemaError(path, f"expected true or false, got {value!r:.80}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(path, f"expected an integer, got {value!r:.80}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(path, f"expected a number, got {value!r:.80}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SchemaError(path, f"expected a string, got {type(value).__name__}")
        return value
    raise TypeError(f"unsupported field type {tp!r} at {path}")


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build ``cls`` from a mapping, refusing unknown, missing or mistyped fields."""
    if not isinstance(data, dict):
        raise SchemaError(path, f"expected a mapping for {cls.__name__}, got {type(data).__name__}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SchemaError(_join(path, unknown[0]), f"unknown field for {cls.__name__} (known: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SchemaError(_join(path, name), f"missing required field of {cls.__name__}")
            continue
        kwargs[name] = _convert(hints[name], data[name], _join(path, name))
    try:
        return cls(**kwargs)
    except SchemaError as exc:
        if path and not exc.field.startswith(path):
            raise SchemaError(_join(path, exc.field), str(exc).split(": ", 1)[1]) from None
        raise


def to_dict(record: Any) -> Any:
    """Turn a record (or nested lists/dicts of records) into plain JSON-able values."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        hints = _hints(type(record))
        out = {}
        for f in dataclasses.fields(record):
            value = getattr(record, f.name)
            # ints given to float fields serialise as floats, so a record has one canonical JSON form
            if type(value) is int and float in (hints[f.name], *get_args(hints[f.name])):
                value = float(value)
            out[f.name] = to_dict(value)
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
