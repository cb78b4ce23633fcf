"""The bridge's configuration (``bridge.yaml``), validated at startup with messages that name the key."""

from __future__ import annotations

import re
from typing import Any

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
    """Contact import (``bridges/contact_import/``): file limits and how hard to drive Synapse."""

    max_bytes: int = 20 * 1024 * 1024
    max_rows: int = 200_000
    default_region: str = "CN"  # for numbers written without a country code
    concurrency: int = 8  # requests in flight to Synapse during an import
    # Numbers looked up per contact; more are left out (a card with thousands of TEL lines would
    # spend a whole day's lookups).
    max_phones_per_contact: int = 10


@attrs.frozen
class TwilioConfig:
    """Twilio's Messages REST API (``bridges/sms/providers.py``) and its webhooks."""

    account_sid: str
    # Also the key Twilio signs webhooks with, so it is needed even when API keys authenticate.
    auth_token: str
    webhook_base_url: str  # what Twilio calls: {webhook_base_url}/_wangxin/v1/sms/twilio/...
    # ``from``: our numbers (the sender pool), or one number or alphanumeric sender id
    from_numbers: tuple[str, ...] = ()
    messaging_service_sid: str | None = None  # instead of ``from``
    api_key_sid: str | None = None  # authenticate with an API key instead of the auth token
    api_key_secret: str | None = None
    base_url: str = "https://api.twilio.com"


@attrs.frozen
class SmsLimits:
    per_user_per_day: int = 50  # chat + invite SMS a user may cause per UTC day
    per_destination_per_day: int = 10  # SMS to one number per UTC day (all kinds but system)
    global_per_second: float = 50.0  # gateway requests per second, all SMS together
    max_segments: int = 6  # longer bodies are refused
    max_attempts: int = 5  # gateway tries before an SMS fails
    retry_base_s: float = 2.0  # back-off: retry_base_s * 2^(attempt-1), at most retry_max_s
    retry_max_s: float = 300.0
    request_timeout_s: float = 10.0  # one gateway request
    concurrency: int = 8  # gateway requests in flight


@attrs.frozen
class VerificationConfig:
    """Phone-number sign-up codes (``bridges/sms/identity.py``)."""

    code_ttl_s: int = 600
    max_attempts: int = 5
    codes_per_number_per_hour: int = 5
    # The last path segment of the delegate URL Synapse is given (account_threepid_delegates.msisdn):
    # Synapse sends the delegate no credentials, so the URL is the credential. None: sign-up by phone is off.
    delegate_secret: str | None = None


@attrs.frozen
class RoutingConfig:
    """Who gets a reply (``bridges/sms/routing.py``)."""

    # When more users text one number than the pool has numbers, share a number and mark each
    # SMS with a reply code; off: refuse the SMS instead.
    reply_codes: bool = True
    # At most one "could not deliver your reply" SMS to a number in this many seconds.
    refusal_interval_s: int = 3600


@attrs.frozen
class SmsConfig:
    provider: str = "outbox"  # outbox | twilio
    outbox_path: str = "sms-outbox.jsonl"  # relative to the config file's directory
    outbox_from: tuple[str, ...] = ("Wangxin",)  # the outbox's sender pool (what it records as "from")
    twilio: TwilioConfig | None = None
    default_region: str = "CN"  # for numbers written without a country code
    join_url: str | None = None  # install/join link in SMS; None: the homeserver's URL
    invite_base_url: str | None = None  # base of personal invite links; None: join_url
    limits: SmsLimits = SmsLimits()
    verification: VerificationConfig = VerificationConfig()
    routing: RoutingConfig = RoutingConfig()

    @property
    def sender_pool(self) -> tuple[str, ...]:
        """Our sender numbers, in order of preference; ``""`` is the provider's own pick."""
        if self.provider == "twilio" and self.twilio is not None:
            return self.twilio.from_numbers or ("",)
        return self.outbox_from


@attrs.frozen
class BridgeConfig:
    homeserver: HomeserverConfig
    appservice: AppserviceConfig
    database: DatabaseConfig
    source: str | None = None
    imports: ImportsConfig = ImportsConfig()
    sms: SmsConfig = SmsConfig()

    @property
    def sms_join_url(self) -> str:
        return self.sms.join_url or self.homeserver.url

    @property
    def sms_invite_base_url(self) -> str:
        return self.sms.invite_base_url or self.sms_join_url

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
    root.reject_unknown(("homeserver", "appservice", "database", "imports", "sms"))
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
                        imports=_parse_imports(root), sms=_parse_sms(root))


def _parse_imports(root: Section) -> ImportsConfig:
    i = root.section("imports", required=False)
    i.reject_unknown(("max_bytes", "max_rows", "default_region", "concurrency", "max_phones_per_contact"))
    defaults = ImportsConfig()
    config = ImportsConfig(
        max_bytes=i.get("max_bytes", int, defaults.max_bytes),
        max_rows=i.get("max_rows", int, defaults.max_rows),
        default_region=i.get("default_region", str, defaults.default_region),
        concurrency=i.get("concurrency", int, defaults.concurrency),
        max_phones_per_contact=i.get("max_phones_per_contact", int, defaults.max_phones_per_contact),
    )
    for key in ("max_bytes", "max_rows", "concurrency", "max_phones_per_contact"):
        if getattr(config, key) < 1:
            raise ConfigError(f"expected a positive integer, found {getattr(config, key)}", ("imports", key),
                              root.source)
    if not re.fullmatch(r"[A-Z]{2}", config.default_region):
        raise ConfigError(f"expected a two-letter region code like CN, found {config.default_region!r}",
                          ("imports", "default_region"), root.source)
    return config


_SID_RE = {"AC": re.compile(r"^AC[0-9a-fA-F]{32}$"), "MG": re.compile(r"^MG[0-9a-fA-F]{32}$"),
           "SK": re.compile(r"^SK[0-9a-fA-F]{32}$")}


def _parse_sms(root: Section) -> SmsConfig:
    s = root.section("sms", required=False)
    s.reject_unknown(("provider", "outbox_path", "outbox_from", "twilio", "default_region", "join_url",
                      "invite_base_url", "limits", "verification", "routing"))
    defaults = SmsConfig()
    provider = s.choice("provider", ("outbox", "twilio"), defaults.provider)
    twilio = _parse_twilio(s) if provider == "twilio" or "twilio" in s.data else None
    if provider == "twilio" and twilio is None:
        raise ConfigError("is missing: expected a mapping (provider is twilio)", ("sms", "twilio"), root.source)
    region = s.get("default_region", str, defaults.default_region)
    if not re.fullmatch(r"[A-Z]{2}", region):
        raise ConfigError(f"expected a two-letter region code like CN, found {region!r}",
                          ("sms", "default_region"), root.source)
    return SmsConfig(
        provider=provider,
        outbox_path=s.get("outbox_path", str, defaults.outbox_path),
        outbox_from=_senders(s, "outbox_from", defaults.outbox_from),
        twilio=twilio,
        default_region=region,
        join_url=_url(s, "join_url", None),
        invite_base_url=_url(s, "invite_base_url", None),
        limits=_parse_sms_limits(s),
        verification=_parse_verification(s),
        routing=_parse_routing(s),
    )


_E164_RE = re.compile(r"\+[1-9][0-9]{6,14}")


def _senders(section: Section, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """One sender (a number, or an alphanumeric sender id) or a list of numbers: the sender pool."""
    value = section.data.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        value = [value]
    elif not isinstance(value, list) or not value:
        raise ConfigError(f"expected a sender id or a list of numbers like [\"+8613800138000\"], found {value!r}",
                          section.path + (key,), section.source)
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(f"expected a sender id or a list of numbers like [\"+8613800138000\"], found {item!r}",
                              section.path + (key,), section.source)
        if (len(value) > 1 or item.startswith("+")) and not _E164_RE.fullmatch(item):
            # A pool must be numbers: only a number can be texted back.
            raise ConfigError(f"expected an E.164 number like +8613800138000, found {item!r}",
                              section.path + (key,), section.source)
        if value.count(item) > 1:
            raise ConfigError(f"{item} is listed twice", section.path + (key,), section.source)
    return tuple(value)


def _url(section: Section, key: str, default: Any) -> str | None:
    value = section.get(key, str, default)
    if value is not None and not re.match(r"^https?://[^/\s]+", value):
        raise ConfigError(f"expected an http(s) URL, found {value!r}", section.path + (key,), section.source)
    return value.rstrip("/") if value else value


def _parse_twilio(s: Section) -> TwilioConfig:
    t = s.section("twilio")
    t.reject_unknown(("base_url", "account_sid", "auth_token", "api_key_sid", "api_key_secret", "from",
                      "messaging_service_sid", "webhook_base_url"))
    config = TwilioConfig(
        account_sid=t.get("account_sid", str),
        auth_token=t.get("auth_token", str),
        webhook_base_url=str(_url(t, "webhook_base_url", ...)),
        from_numbers=_senders(t, "from", ()),
        messaging_service_sid=t.get("messaging_service_sid", str, None),
        api_key_sid=t.get("api_key_sid", str, None),
        api_key_secret=t.get("api_key_secret", str, None),
        base_url=str(_url(t, "base_url", TwilioConfig.__attrs_attrs__.base_url.default)),
    )
    for key, prefix, value in (("account_sid", "AC", config.account_sid),
                               ("messaging_service_sid", "MG", config.messaging_service_sid),
                               ("api_key_sid", "SK", config.api_key_sid)):
        if value is not None and not _SID_RE[prefix].match(value):
            raise ConfigError(f"expected {prefix} followed by 32 hexadecimal digits, found {value!r}",
                              t.path + (key,), t.source)
    if bool(config.from_numbers) == (config.messaging_service_sid is not None):
        raise ConfigError("set exactly one of 'from' (our numbers or sender id) and 'messaging_service_sid'",
                          t.path + ("from",), t.source)
    if (config.api_key_sid is None) != (config.api_key_secret is None):
        raise ConfigError("api_key_sid and api_key_secret go together", t.path + ("api_key_secret",), t.source)
    return config


def _positive(section: Section, key: str, default: Any, kind: type = int) -> Any:
    """An integer (or, for ``kind=float``, any number) above zero."""
    value = section.data.get(key)
    if value is None:
        return default
    ok = isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
    if not ok or value <= 0:
        what = "a positive number" if kind is float else "a positive integer"
        raise ConfigError(f"expected {what}, found {value!r}", section.path + (key,), section.source)
    return float(value) if kind is float else value


def _parse_sms_limits(s: Section) -> SmsLimits:
    limits = s.section("limits", required=False)
    fields = attrs.fields(SmsLimits)
    limits.reject_unknown(tuple(f.name for f in fields))
    values = {f.name: _positive(limits, f.name, f.default, float if f.type in (float, "float") else int)
              for f in fields}
    return SmsLimits(**values)


def _parse_verification(s: Section) -> VerificationConfig:
    v = s.section("verification", required=False)
    fields = [f for f in attrs.fields(VerificationConfig) if f.name != "delegate_secret"]
    v.reject_unknown(tuple(f.name for f in fields) + ("delegate_secret",))
    secret = v.get("delegate_secret", str, None)
    if secret is not None and not re.fullmatch(r"[A-Za-z0-9_\-]{32,}", secret):
        # It is a URL path segment, and the only thing between strangers and our SMS bill.
        raise ConfigError("expected at least 32 letters, digits, '-' or '_' (e.g. python3 -c \"import secrets; "
                          "print(secrets.token_urlsafe(32))\")", v.path + ("delegate_secret",), v.source)
    return VerificationConfig(**{f.name: _positive(v, f.name, f.default) for f in fields}, delegate_secret=secret)


def _parse_routing(s: Section) -> RoutingConfig:
    r = s.section("routing", required=False)
    r.reject_unknown(("reply_codes", "refusal_interval_s"))
    defaults = RoutingConfig()
    return RoutingConfig(reply_codes=r.get("reply_codes", bool, defaults.reply_codes),
                         refusal_interval_s=_positive(r, "refusal_interval_s", defaults.refusal_interval_s))


def load_config(path: str) -> BridgeConfig:
    return parse_config(load_yaml_file(path))
