"""Typed settings of a component: a dataclass whose fields are its configuration keys.

A component that can be configured from a TOML table (a baseline defined inline, ...) declares a
:class:`Settings` subclass: one field per key, with its type, its default and a help text
(:func:`option`, or :func:`required` for a key without a default), and a :meth:`Settings.check_values` for what the types
cannot say. :meth:`Settings.from_table` reads and validates a table into it; :meth:`Settings.describe`
is what ``hybridpot config`` prints.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Mapping

from hybridpot.errors import ConfigError


def option(default: Any, text: str) -> Any:
    """A configuration key with its default and help text (a list or table default is copied for each instance)."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": text})
    return dataclasses.field(default=default, metadata={"help": text})


def _existing_file(base: Path, value: str, where: str) -> Path:
    """``value`` as an absolute path relative to ``base``; ConfigError naming ``where`` if no such file exists."""
    path = (base / value).resolve()
    if not path.is_file():
        raise ConfigError(f"{where}: file not found: {path}")
    return path


def required(text: str) -> Any:
    """A configuration key without a default, with its help text."""
    return dataclasses.field(metadata={"help": text})


@dataclasses.dataclass
class Settings:
    """Base class of a component's settings (a dataclass; see the module docstring)."""

    def check_values(self, where: str) -> None:
        """Raise :class:`ConfigError` (prefixed with ``where``) for values the types allow but the component cannot use."""

    #: the keys whose values name files that must exist (unset keys, None, are skipped): :meth:`resolve` makes them absolute
    file_keys: ClassVar[tuple[str, ...]] = ()

    def resolve(self, base: Path, where: str) -> None:
        """Make the file paths among the values absolute, relative to ``base`` (the folder of the file the table came
        from), and raise :class:`ConfigError` for a file that does not exist: those of :attr:`file_keys` (a component
        with other paths overrides this)."""
        for name in self.file_keys:
            if getattr(self, name) is not None:
                setattr(self, name, _existing_file(base, getattr(self, name), f"{where} {name}"))

    @classmethod
    def keys(cls) -> dict[str, dataclasses.Field]:
        """The configuration keys: field name -> field."""
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str, base: Path | None = None) -> "Settings":
        """The settings from a TOML table, every key checked.

        Args:
            table: key -> value (as TOML gives them).
            where: the table's place for messages, e.g. ``"fit.toml: [baseline]"``.
            base: the folder relative paths are relative to (:meth:`resolve`); None: leave them as they are.

        Raises:
            ConfigError: an unknown key (the allowed ones are listed), a missing required key, a
                value of the wrong type, a NaN or infinite number, or what :meth:`check_values` refuses.
        """
        keys = cls.keys()
        unknown = sorted(set(table) - set(keys))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(keys)}")
        hints = typing.get_type_hints(cls)
        values = {}
        for name, f in keys.items():
            if name not in table:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise ConfigError(f"{where} {name} is required ({_help(f)})")
                continue
            values[name] = _checked(table[name], hints[name], f"{where} {name}")
        settings = cls(**values)
        settings.check_values(where)
        if base is not None:
            settings.resolve(Path(base), where)
        return settings

    @classmethod
    def describe(cls) -> list[tuple[str, str, str, str]]:
        """(key, type, default, help) of every key; default "required" for a required key."""
        hints = typing.get_type_hints(cls)
        out = []
        for name, f in cls.keys().items():
            if f.default is not dataclasses.MISSING:
                default = repr(f.default)
            elif f.default_factory is not dataclasses.MISSING:
                default = repr(f.default_factory())
            else:
                default = "required"
            out.append((name, _type_name(hints[name]), default, _help(f)))
        return out


def read_sections(raw: Mapping[str, Any], sections: Mapping[str, type[Settings]], source: str,
                  base: Path | None = None) -> dict[str, Settings]:
    """The tables ``sections`` (name -> its settings class) of a configuration (as TOML gives it), each validated by
    :meth:`Settings.from_table` (a missing table: every key at its default). Tables of ``raw`` not in ``sections`` are
    not looked at (the caller checks them).

    Raises:
        ConfigError: a section that is not a table, or what :meth:`Settings.from_table` raises (unknown keys among
            them), naming ``source`` (the file) and the section.
    """
    out = {}
    for name, cls in sections.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        out[name] = cls.from_table(table, f"{source}: [{name}]", base)
    return out


def _help(f: dataclasses.Field) -> str:
    return str(f.metadata.get("help", ""))


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args) + (" | none" if type(None) in typing.get_args(hint) else "")
    if origin is list and args:
        return f"list[{_type_name(args[0])}]"
    return getattr(origin, "__name__", str(hint))


def _checked(value: Any, hint: Any, where: str) -> Any:
    """``value`` if it fits the type ``hint`` (int accepted for float, bool never for a number), else ConfigError."""
    if non_finite(value):
        raise ConfigError(f"{where} = {value!r}: numbers must be finite (no nan or inf)")
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _checked(value, option, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where} = {value!r}: expected {_type_name(hint)}")
    base = origin or hint
    if base is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, base)
    if not ok:
        raise ConfigError(f"{where} = {value!r}: expected {_type_name(hint)}")
    if non_finite(value):
        raise ConfigError(f"{where} = {value!r}: numbers must be finite (no nan or inf)")
    if base is list and typing.get_args(hint):
        (item,) = typing.get_args(hint)
        value = [_checked(v, item, f"{where}[{k}]") for k, v in enumerate(value)]
    return value


def non_finite(value: Any) -> bool:
    """Whether ``value`` is, or (in a list or table) holds, a NaN or infinite number."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return any(non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(non_finite(v) for v in value.values())
    return False


def in_words(values: Mapping[str, Any]) -> str:
    """Settings as a log or a plot label shows them: ``{"rcut": 4.75, "kind": "power"}`` -> "rcut 4.75, kind power"
    (floats in their shortest form)."""
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
