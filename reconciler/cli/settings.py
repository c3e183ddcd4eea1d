"""Where every ``pbx`` setting comes from: flag, then ``PBX_*`` environment, then config file, then
default (the order INTERFACE.md fixes). Secrets are held here but never rendered.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.core.audio_roots import DEFAULT_ROOTS, AudioRoots
from reconciler.core.errors import SettingsError
from reconciler.daemon.config import default_xml_curl_workers
from reconciler.web.config import DEFAULT_LISTEN as PORTAL_LISTEN

DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_FREESWITCH = "127.0.0.1:8021:ClueCon"
DEFAULT_INTERVAL = 60.0
DEFAULT_STABLE_WINDOW = 2.0
DEFAULT_CREDENTIALS_GRACE = 7 * 86400.0


def _masked_git_url(url: str) -> str:
    from reconciler.sources.git import GitRemote  # the git source: shown at start only

    return GitRemote.parse(url).masked()


@dataclass(frozen=True)
class Setting:
    name: str  # option name with underscores, also the config-file key
    env: str
    default: Any = None
    is_list: bool = False
    secret: bool = False
    parse: Callable[[str], Any] | None = None
    show: Callable[[Any], str] | None = None  # how start-up logs render it (secrets masked)


SETTINGS: Mapping[str, Setting] = {
    s.name: s
    for s in (
        Setting("tenants", "PBX_TENANTS", "./tenants.d"),
        Setting("database_url", "PBX_DATABASE_URL", None, secret=True),
        Setting("templates", "PBX_TEMPLATES", None),
        Setting("freeswitch", "PBX_FREESWITCH", (DEFAULT_FREESWITCH,), is_list=True, secret=True),
        Setting("log_format", "PBX_LOG_FORMAT", "text"),
        Setting("listen", "PBX_LISTEN", DEFAULT_LISTEN),
        Setting("xml_curl_auth", "PBX_XML_CURL_AUTH", None, secret=True),
        Setting("xml_curl_workers", "PBX_XML_CURL_WORKERS", default_xml_curl_workers(), parse=int),
        Setting("xml_curl_hang_timeout", "PBX_XML_CURL_HANG_TIMEOUT", 10.0, parse=float),
        Setting("status_listen", "PBX_STATUS_LISTEN", None),
        Setting("status_auth", "PBX_STATUS_AUTH", None, secret=True),
        Setting("cdr_spool_dir", "PBX_CDR_SPOOL_DIR", (), is_list=True),
        Setting("interval", "PBX_INTERVAL", DEFAULT_INTERVAL, parse=float),
        Setting("max_orphan_share", "PBX_MAX_ORPHAN_SHARE", 0.5, parse=float),
        Setting("stable_window", "PBX_STABLE_WINDOW", DEFAULT_STABLE_WINDOW, parse=float),
        Setting(
            "credentials_grace", "PBX_CREDENTIALS_GRACE", DEFAULT_CREDENTIALS_GRACE, parse=float
        ),
        Setting("git_url", "PBX_GIT_URL", None, show=_masked_git_url),
        Setting("git_branch", "PBX_GIT_BRANCH", "main"),
        Setting("git_poll", "PBX_GIT_POLL", 30.0, parse=float),
        Setting("state_dir", "PBX_STATE_DIR", None),
        Setting("status_url", "PBX_STATUS_URL", None),
        Setting("portal", "PBX_PORTAL", "on"),
        Setting("portal_listen", "PBX_PORTAL_LISTEN", "{}:{}".format(*PORTAL_LISTEN)),
        Setting("portal_url", "PBX_PORTAL_URL", None),
        Setting("portal_tls_cert", "PBX_PORTAL_TLS_CERT", None),
        Setting("portal_tls_key", "PBX_PORTAL_TLS_KEY", None),
        Setting("portal_idle_timeout", "PBX_PORTAL_IDLE_TIMEOUT", 1800.0, parse=float),
        Setting("portal_session_lifetime", "PBX_PORTAL_SESSION_LIFETIME", 43200.0, parse=float),
        Setting("portal_invite_ttl", "PBX_PORTAL_INVITE_TTL", 259200.0, parse=float),
        Setting("portal_login_limit", "PBX_PORTAL_LOGIN_LIMIT", "5/900"),
        Setting("portal_address_limit", "PBX_PORTAL_ADDRESS_LIMIT", "30/300"),
        Setting("portal_trusted_proxies", "PBX_PORTAL_TRUSTED_PROXIES", ""),
        Setting("portal_unauthenticated_limit", "PBX_PORTAL_UNAUTHENTICATED_LIMIT", "120/60"),
        Setting("portal_token_max_days", "PBX_PORTAL_TOKEN_MAX_DAYS", 90, parse=int),
        Setting("phone_wss", "PBX_PHONE_WSS", (), is_list=True),
        Setting("portal_revision_url", "PBX_PORTAL_REVISION_URL", None),
        Setting("portal_sip_host", "PBX_PORTAL_SIP_HOST", None),
        Setting("portal_sip_port", "PBX_PORTAL_SIP_PORT", 5060, parse=int),
        Setting("portal_sip_tls_port", "PBX_PORTAL_SIP_TLS_PORT", 5061, parse=int),
        Setting("portal_service_level", "PBX_PORTAL_SERVICE_LEVEL", 20.0, parse=float),
        Setting("smtp_url", "PBX_SMTP_URL", None, secret=True),
        Setting("smtp_from", "PBX_SMTP_FROM", None),
        Setting("recordings_dir", "PBX_RECORDINGS_DIR", DEFAULT_ROOTS.recordings),
        Setting("sounds_dir", "PBX_SOUNDS_DIR", DEFAULT_ROOTS.sounds),
        Setting("voicemail_dir", "PBX_VOICEMAIL_DIR", DEFAULT_ROOTS.voicemail),
    )
}


@dataclass(frozen=True)
class ResolvedSettings:
    """Final values plus where each came from (shown at start-up; secrets masked)."""

    values: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def describe(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in self.values.items():
            setting = SETTINGS.get(name)
            if setting and setting.secret and value:
                shown = "(sensitive)"
            elif setting and setting.show and value:
                shown = setting.show(value)
            else:
                shown = str(value)
            out[name] = f"{shown} [{self.sources.get(name, 'default')}]"
        return out


def load_config_file(path: Path | None) -> dict[str, Any]:
    """TOML file with the same keys as the long options (``database_url = "..."``)."""
    if path is None:
        return {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise SettingsError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(SETTINGS))
    if unknown:
        raise SettingsError(f"config file {path}: unknown keys {', '.join(unknown)}")
    return data


def resolve(
    flags: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    config: Mapping[str, Any] | None = None,
) -> ResolvedSettings:
    """Merge flag > env > config > default for every known setting."""
    env = os.environ if environ is None else environ
    cfg = config or {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, setting in SETTINGS.items():
        flag = flags.get(name)
        if flag not in (None, (), []):
            value, source = flag, "flag"
        elif env.get(setting.env):
            raw = env[setting.env]
            value = (
                tuple(p.strip() for p in raw.split(",") if p.strip()) if setting.is_list else raw
            )
            source = "env"
        elif name in cfg:
            value, source = cfg[name], "config"
            if setting.is_list and isinstance(value, str):
                value = (value,)
        else:
            value, source = setting.default, "default"
        if setting.is_list and value is not None:
            value = tuple(value)
        if setting.parse is not None and isinstance(value, str):
            try:
                value = setting.parse(value)
            except ValueError as exc:
                raise SettingsError(f"{name}: cannot parse {value!r}") from exc
        values[name] = value
        sources[name] = source
    return ResolvedSettings(values, sources)


def parse_seconds(value: object, name: str) -> float:
    """A duration setting: a number of seconds, zero or more."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{name}: expected seconds, got {value!r}") from exc
    if not seconds >= 0:
        raise SettingsError(f"{name}: expected zero or more seconds, got {value!r}")
    return seconds


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 in brackets) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise SettingsError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_credentials(text: str | None, name: str = "xml_curl_auth") -> tuple[str, str] | None:
    """``USER:PASS`` -> (user, pass); never echoes the value in errors."""
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise SettingsError(f"{name} must look like USER:PASSWORD")
    return user, password


def audio_roots(cfg: ResolvedSettings) -> AudioRoots:
    """The switches' audio directories (``SettingsError`` for a path that is not plain)."""
    return AudioRoots.checked(
        str(cfg["recordings_dir"]), str(cfg["sounds_dir"]), str(cfg["voicemail_dir"])
    )
