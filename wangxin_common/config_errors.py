"""Configuration errors that name the key at fault and what was expected."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class ConfigError(Exception):
    """A configuration value is missing or wrong.

    Args:
        message: what is wrong and what was expected, as a sentence.
        path: the keys leading to the value, e.g. ``("appservice", "hs_token")``.
        source: the file the configuration came from, if any.
    """

    def __init__(self, message: str, path: Sequence[str] = (), source: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = tuple(path)
        self.source = source

    def __str__(self) -> str:
        where = ".".join(self.path) if self.path else "(top level)"
        prefix = f"{self.source}: " if self.source else ""
        return f"{prefix}key '{where}': {self.message}"


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", dict: "a mapping", list: "a list"}


class Section:
    """Typed, path-aware access to one mapping of a configuration file.

    Every getter raises :class:`ConfigError` naming the full key path, so a wrong
    config stops startup with a sentence instead of a traceback.
    """

    def __init__(self, data: Any, path: Sequence[str] = (), source: str | None = None):
        self.path = tuple(path)
        self.source = source
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected a mapping, found {type(data).__name__}", self.path, source)
        self.data = data

    def _error(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, self.path + (key,), self.source)

    def get(self, key: str, kind: type, default: Any = ..., *, allow_empty: bool = False) -> Any:
        """Return ``data[key]`` checked to be of ``kind``; ``default`` when absent (required if omitted)."""
        if key not in self.data or self.data[key] is None:
            if default is ...:
                raise self._error(key, f"is missing: expected {_TYPE_NAMES.get(kind, kind.__name__)}")
            return default
        value = self.data[key]
        # bool is an int subclass; a port of `true` is a mistake worth naming.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self._error(
                key, f"expected {_TYPE_NAMES.get(kind, kind.__name__)}, found {type(value).__name__} {value!r}"
            )
        if isinstance(value, str) and not allow_empty and not value.strip():
            raise self._error(key, "must not be empty")
        return value

    def port(self, key: str, default: Any = ...) -> int:
        value = self.get(key, int, default)
        if not 0 < value < 65536:
            raise self._error(key, f"expected a TCP port between 1 and 65535, found {value}")
        return value

    def choice(self, key: str, choices: Sequence[str], default: Any = ...) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise self._error(key, f"expected one of {', '.join(choices)}; found {value!r}")
        return value

    def section(self, key: str, required: bool = True) -> Section:
        if key not in self.data or self.data[key] is None:
            if required:
                raise self._error(key, "is missing: expected a mapping")
            return Section({}, self.path + (key,), self.source)
        return Section(self.data[key], self.path + (key,), self.source)

    def reject_unknown(self, known: Sequence[str]) -> None:
        """Refuse keys this section does not know: a typo must not be silently ignored."""
        for key in self.data:
            if key not in known:
                raise self._error(str(key), f"is not a known option here; known options: {', '.join(known)}")


def load_yaml_file(path: str) -> Section:
    """Read a YAML file into a :class:`Section`, turning I/O and syntax problems into ConfigError."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError("the configuration file does not exist", (), path) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"the file is not valid YAML: {e}", (), path) from None
    return Section(data if data is not None else {}, (), path)
