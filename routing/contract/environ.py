"""Settings from environment variables: the one parser every deployable's settings.py uses.

Pure: it reads the mapping it is given (each `settings.load(environ)` passes os.environ),
so settings are testable and nothing else in the code reads the environment.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")
PREFIX = "TONGDAI_"


class SettingsError(ValueError):
    """A setting is malformed; the message names the variable and the rule."""


def env_name(field_name: str) -> str:
    """The environment variable of a settings field: `kafka_bootstrap` -> `TONGDAI_KAFKA_BOOTSTRAP`."""
    return PREFIX + field_name.upper()


def _convert(name: str, raw: str, kind: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(kind) if a is not type(None)]
        return None if raw == "" else _convert(name, raw, inner[0])
    if kind is bool:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name}={raw!r}: must be one of true/false/1/0/yes/no")
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r}: must be a{'n integer' if kind is int else ' number'}") from None
    if origin is tuple:
        return tuple(p.strip() for p in raw.split(",") if p.strip())
    return raw


def from_environ(cls: type[T], environ: Mapping[str, str]) -> T:
    """Build the frozen settings dataclass `cls`: defaults in code, overridden by TONGDAI_*."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = env_name(f.name)
        if name in environ:
            values[f.name] = _convert(name, environ[name], hints[f.name])
    settings = cls(**values)
    check = getattr(settings, "check", None)
    if check is not None:
        check()
    return settings


def positive(name: str, value: float) -> None:
    """Raise SettingsError unless value > 0 (for use in a settings class's `check`)."""
    if value <= 0:
        raise SettingsError(f"{env_name(name)}={value!r}: must be greater than 0")


def port(name: str, value: int) -> None:
    """Raise SettingsError unless value is a TCP port number."""
    if not 0 < value < 65536:
        raise SettingsError(f"{env_name(name)}={value!r}: must be a TCP port (1-65535)")
