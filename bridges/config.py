"""The bridge's configuration (``bridge.yaml``), validated at startup with messages that name the key."""

from __future__ import annotations

import re

import attrs

from wangxin_common.config_errors import ConfigError, Section, load_yaml_file

LOCALPART_RE = re.compile(r"^[a-z0-9._=\-/]+$")


@attrs.frozen
class HomeserverConfig:
    url: str
    server_name: str
    # The Synapse modules' service secret: lets the bridge bot act for the user who sent a command.
    service_secret: str | None = None


@attrs.frozen
class AppserviceConfig:
    id: str
    as_token: str
    hs_token: str
    bind_address: str
    port: int
    bot_localpart: str
    bot_displayname: str
    ghost_prefix: str


@attrs.frozen
class DatabaseConfig:
    kind: str  # "sqlite" or "postgres"
    path: str | None = None
    dsn: str | None = None


@attrs.frozen
class ImportsConfig:
    """Contact import (``bridges/contact_import.py``): file limits and how hard to drive Synapse."""

    max_bytes: int = 20 * 1024 * 1024
    max_rows: int = 200_000
    default_region: str = "CN"  # for numbers written without a country code
    concurrency: int = 8  # requests in flight to Synapse during an import


@attrs.frozen
class BridgeConfig:
    homeserver: HomeserverConfig
    appservice: AppserviceConfig
    database: DatabaseConfig
    source: str | None = None
    imports: ImportsConfig = ImportsConfig()

    @property
    def bot_user_id(self) -> str:
        return f"@{self.appservice.bot_localpart}:{self.homeserver.server_name}"

    def ghost_user_id(self, suffix: str) -> str:
        return f"@{self.appservice.ghost_prefix}{suffix}:{self.homeserver.server_name}"

    def is_ghost(self, user_id: str) -> bool:
        localpart, _, server = user_id[1:].partition(":")
        return (
            user_id.startswith("@")
            and server == self.homeserver.server_name
            and localpart.startswith(self.appservice.ghost_prefix)
        )


def parse_config(root: Section) -> BridgeConfig:
    """Build a :class:`BridgeConfig` from a parsed YAML mapping, or raise ConfigError naming the key."""
    root.reject_unknown(("homeserver", "appservice", "database", "imports"))
    hs = root.section("homeserver")
    hs.reject_unknown(("url", "server_name", "service_secret"))
    url = hs.get("url", str)
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"expected an http(s) URL, found {url!r}", ("homeserver", "url"), root.source)
    homeserver = HomeserverConfig(
        url=url.rstrip("/"),
        server_name=hs.get("server_name", str),
        service_secret=hs.get("service_secret", str, None),
    )

    a = root.section("appservice")
    a.reject_unknown(
        ("id", "as_token", "hs_token", "bind_address", "port", "bot_localpart", "bot_displayname", "ghost_prefix")
    )
    appservice = AppserviceConfig(
        id=a.get("id", str),
        as_token=a.get("as_token", str),
        hs_token=a.get("hs_token", str),
        bind_address=a.get("bind_address", str, "127.0.0.1"),
        port=a.port("port"),
        bot_localpart=a.get("bot_localpart", str, "wangxin"),
        bot_displayname=a.get("bot_displayname", str, "Wangxin"),
        ghost_prefix=a.get("ghost_prefix", str, "wx_"),
    )
    for key in ("bot_localpart", "ghost_prefix"):
        value = getattr(appservice, key)
        if not LOCALPART_RE.match(value):
            raise ConfigError(
                f"expected lower-case letters, digits and ._=-/ only, found {value!r}", ("appservice", key), root.source
            )
    if appservice.as_token == appservice.hs_token:
        raise ConfigError("must differ from as_token", ("appservice", "hs_token"), root.source)
    if appservice.bot_localpart.startswith(appservice.ghost_prefix):
        raise ConfigError(
            "the bot's localpart must not start with the ghost prefix", ("appservice", "bot_localpart"), root.source
        )

    d = root.section("database", required=False)
    d.reject_unknown(("kind", "path", "dsn"))
    kind = d.choice("kind", ("sqlite", "postgres"), "sqlite")
    if kind == "sqlite":
        database = DatabaseConfig(kind="sqlite", path=d.get("path", str, "bridge.db"))
    else:
        database = DatabaseConfig(kind="postgres", dsn=d.get("dsn", str))
    return BridgeConfig(homeserver=homeserver, appservice=appservice, database=database, source=root.source,
                        imports=_parse_imports(root))


def _parse_imports(root: Section) -> ImportsConfig:
    i = root.section("imports", required=False)
    i.reject_unknown(("max_bytes", "max_rows", "default_region", "concurrency"))
    defaults = ImportsConfig()
    config = ImportsConfig(
        max_bytes=i.get("max_bytes", int, defaults.max_bytes),
        max_rows=i.get("max_rows", int, defaults.max_rows),
        default_region=i.get("default_region", str, defaults.default_region),
        concurrency=i.get("concurrency", int, defaults.concurrency),
    )
    for key in ("max_bytes", "max_rows", "concurrency"):
        if getattr(config, key) < 1:
            raise ConfigError(f"expected a positive integer, found {getattr(config, key)}", ("imports", key),
                              root.source)
    if not re.fullmatch(r"[A-Z]{2}", config.default_region):
        raise ConfigError(f"expected a two-letter region code like CN, found {config.default_region!r}",
                          ("imports", "default_region"), root.source)
    return config


def load_config(path: str) -> BridgeConfig:
    return parse_config(load_yaml_file(path))
