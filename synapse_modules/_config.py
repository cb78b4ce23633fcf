"""Config helpers for the modules: validation that names the key.

The checks are pure. ``parse_config`` of each module turns :class:`ModuleConfigError` into
Synapse's own ``ConfigError`` (see ``synapse/util/module_loader.py:load_module``), whose path
makes Synapse print ``Error in configuration at 'modules.<item N>.config.<key>'``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from synapse.module_api.errors import ConfigError


class ModuleConfigError(ValueError):
    def __init__(self, message: str, path: Sequence[str]):
        super().__init__(message)
        self.message = message
        self.path = tuple(path)


def require_mapping(config: Any) -> Mapping[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise ModuleConfigError(f"expected a mapping, found {type(config).__name__}", ())
    return config


def reject_unknown(config: Mapping[str, Any], known: Sequence[str]) -> None:
    for key in config:
        if key not in known:
            raise ModuleConfigError(f"unknown option; known options: {', '.join(known)}", (str(key),))


def get_str(config: Mapping[str, Any], key: str, default: Any = ...) -> Any:
    if key not in config or config[key] is None:
        if default is ...:
            raise ModuleConfigError("is missing: expected a string", (key,))
        return default
    value = config[key]
    if not isinstance(value, str) or not value.strip():
        raise ModuleConfigError(f"expected a non-empty string, found {value!r}", (key,))
    return value


def get_secret(config: Mapping[str, Any], key: str, min_length: int = 16) -> str:
    """A required shared secret, long enough not to be guessed."""
    secret: str = get_str(config, key)
    if len(secret) < min_length:
        raise ModuleConfigError(f"expected a secret of at least {min_length} characters", (key,))
    return secret


def get_user_id(config: Mapping[str, Any], key: str, default: Any = ...) -> Any:
    value = get_str(config, key, default)
    if value is not None and (not value.startswith("@") or ":" not in value):
        raise ModuleConfigError(f"expected a Matrix user id like @name:server, found {value!r}", (key,))
    return value


def get_bool(config: Mapping[str, Any], key: str, default: bool) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise ModuleConfigError(f"expected true or false, found {value!r}", (key,))
    return value


def get_int(config: Mapping[str, Any], key: str, default: Any = ..., *, minimum: int | None = None) -> Any:
    if key not in config or config[key] is None:
        if default is ...:
            raise ModuleConfigError("is missing: expected an integer", (key,))
        return default
    value = config[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ModuleConfigError(f"expected an integer, found {value!r}", (key,))
    if minimum is not None and value < minimum:
        raise ModuleConfigError(f"expected an integer of at least {minimum}, found {value}", (key,))
    return value


def to_synapse_config_error(error: ModuleConfigError) -> Exception:
    """Wrap for Synapse, which prefixes the module's position in ``modules:`` to our path."""
    return ConfigError(error.message, error.path)
