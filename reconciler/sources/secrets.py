"""Carrier gateways' passwords: a secrets source on the host, never git.

Two places, the environment first: ``PBX_GATEWAY_<NAME>_PASSWORD`` (the gateway name upper-
cased, ``.`` and ``-`` as ``_``), then the YAML file ``PBX_SECRETS_FILE`` names::

    gateways:
      carrier1: {password: "..."}

The file must be the owner's alone (mode 0600 or stricter): one readable by its group or by
everyone is refused with a clear error, as ssh refuses a readable key. A problem of the file
or a missing password is an error of the gateways it leaves without one, never of the others
or of any tenant.

A password is never returned where it could be shown: the planner gets a *credentials
marker* (``credentials_marker``): a slow salted digest that changes when the password
changes, so ``pbx plan`` can say "credentials changed" without a value a reader could try
passwords against cheaply. Only the xml_curl answer that hands the gateway to an
authenticated switch reads the password itself (``GatewaySecrets.password``).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from reconciler.core.logs import register_secret

SECRETS_FILE_ENV = "PBX_SECRETS_FILE"
NO_CREDENTIALS = "none"
"""The marker of a gateway that authenticates with nothing (no ``username``)."""
MISSING_CREDENTIALS = "missing"
"""The marker of a gateway whose password the host does not hold."""
_DIGEST_ITERATIONS = 120_000
_MAX_FILE_BYTES = 1 << 20


def password_variable(gateway: str) -> str:
    """``PBX_GATEWAY_<NAME>_PASSWORD`` for ``gateway`` (``.`` and ``-`` become ``_``)."""
    return "PBX_GATEWAY_" + gateway.upper().replace(".", "_").replace("-", "_") + "_PASSWORD"


@dataclass(frozen=True)
class GatewaySecrets:
    """The passwords the host holds, and why the file gave none (``file_problem``)."""

    passwords: Mapping[str, str] = field(default_factory=dict, repr=False)
    file_problem: str | None = None
    refused: Mapping[str, str] = field(default_factory=dict)
    """Gateways whose password was found but cannot be sent as is, and why."""

    def password(self, gateway: str) -> str | None:
        return self.passwords.get(gateway)

    def missing_reason(self, gateway: str) -> str:
        """Why ``gateway`` has no password: the one message an operator needs."""
        where = f"set {password_variable(gateway)} or gateways.{gateway}.password in "
        where += f"the file {SECRETS_FILE_ENV} names"
        if gateway in self.refused:
            return f"password of gateway '{gateway}' {self.refused[gateway]}"
        if self.file_problem is not None:
            return f"no password for gateway '{gateway}' ({self.file_problem}); {where}"
        return f"no password for gateway '{gateway}': {where}"

    def credentials_marker(self, gateway: str, username: str | None) -> str:
        """What the plan compares: ``none`` (nothing to authenticate with), ``missing``, or
        a digest of the password salted with the gateway and user names."""
        if username is None:
            return NO_CREDENTIALS
        password = self.passwords.get(gateway)
        if password is None:
            return MISSING_CREDENTIALS
        return _digest(gateway, username, password)


@lru_cache(maxsize=256)
def _digest(gateway: str, username: str, password: str) -> str:
    salt = f"pbx-reconciler gateway {gateway} {username}".encode()
    derived = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _DIGEST_ITERATIONS)
    return "pbkdf2:" + derived.hex()[:16]


def read_gateway_secrets(
    gateways: Iterable[str], environ: Mapping[str, str] | None = None
) -> GatewaySecrets:
    """The passwords of ``gateways``: from ``environ`` (default ``os.environ``), else from
    its secrets file. (``SecretsSource`` does the same, reading the file only when it
    changed.)"""
    return SecretsSource(environ).current(gateways)


class SecretsFileError(Exception):
    """The secrets file cannot be used (unreadable, readable by others, not the format)."""


def _file_passwords(path: Path) -> dict[str, str]:
    try:
        with open(path, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise SecretsFileError(
                    f"{SECRETS_FILE_ENV} {path} is readable by group or others "
                    f"(mode {stat.S_IMODE(mode):04o}): refused; chmod 600 it"
                )
            raw = file.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SecretsFileError(f"{SECRETS_FILE_ENV} {path}: {exc.strerror}") from exc
    if len(raw) > _MAX_FILE_BYTES:
        raise SecretsFileError(f"{SECRETS_FILE_ENV} {path}: larger than 1 MiB")
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        # never the parser's message: it may quote the line, a password
        raise SecretsFileError(f"{SECRETS_FILE_ENV} {path}:{where} not valid YAML") from None
    gateways = data.get("gateways") if isinstance(data, dict) else None
    if data is not None and not isinstance(gateways, dict):
        raise SecretsFileError(f"{SECRETS_FILE_ENV} {path}: expected 'gateways:' as a mapping")
    passwords: dict[str, str] = {}
    for name, entry in (gateways or {}).items():
        password = entry.get("password") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not isinstance(password, str | int) or password == "":
            raise SecretsFileError(
                f"{SECRETS_FILE_ENV} {path}: gateways.{name}: expected {{password: <text>}}"
            )
        passwords[name] = str(password)
    return passwords


class SecretsSource:
    """The host's gateway secrets; the file is read again only when it changed (every pass
    and every gateway answer asks), the environment at every call."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ
        self._seen: tuple[object, ...] | None = None
        self._file: dict[str, str] = {}
        self._file_problem: str | None = None

    def current(self, gateways: Iterable[str]) -> GatewaySecrets:
        """The passwords of ``gateways`` (environment first, then the file)."""
        env = os.environ if self._environ is None else self._environ
        self._refresh(env)
        passwords: dict[str, str] = {}
        problems: dict[str, str] = {}
        for name in gateways:
            variable = password_variable(name)
            value = env.get(variable) or self._file.get(name)
            if not value:
                continue
            problem = password_problem(value)
            if problem is not None:
                where = variable if env.get(variable) else f"gateways.{name}.password"
                problems[name] = f"{where} {problem}: refused"
                continue
            register_secret(value)
            passwords[name] = value
        return GatewaySecrets(passwords, self._file_problem, problems)

    def password(self, gateway: str) -> str | None:
        """One gateway's password (the xml_curl answer's lookup)."""
        return self.current((gateway,)).password(gateway)

    def _refresh(self, env: Mapping[str, str]) -> None:
        path = env.get(SECRETS_FILE_ENV)
        try:
            info = os.stat(path) if path else None
            stamp: object = (info.st_mtime_ns, info.st_size, info.st_mode) if info else None
        except OSError as exc:
            stamp = exc.errno
        if (path, stamp) == self._seen:
            return
        self._seen = (path, stamp)
        self._file, self._file_problem = {}, None
        if path:
            try:
                self._file = _file_passwords(Path(path))
            except SecretsFileError as exc:
                self._file_problem = str(exc)


def password_problem(password: str) -> str | None:
    """Why FreeSWITCH would not take ``password`` as written, or None: every fetched XML
    document is preprocessed (``$${...}`` expanded), and a line break or control character
    ends a value."""
    if "${" in password:
        return "holds '${', which FreeSWITCH would expand"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in password):
        return "holds a control character"
    return None
