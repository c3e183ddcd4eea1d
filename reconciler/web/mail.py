"""Invitation and reset links by mail, to the address git declares: with mail configured the
link reaches the person, never the one who asked for it (the portal then shows only where it
went, masked: "a...@acme.example.com").

``PBX_SMTP_URL``: ``smtp://[user:password@]host[:port]`` (STARTTLS when the server offers it)
or ``smtps://...`` (TLS from the first byte); ``PBX_SMTP_FROM``: the sender address. Sending
is asynchronous (aiosmtplib): it never blocks the portal's event loop. Neither the link nor
the SMTP password reaches a log line or an error message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib

from reconciler.store.accounts import RESET
from reconciler.web.errors import Unavailable
from reconciler.web.invitations import InviteLink

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MailSettings:
    host: str
    port: int
    sender: str
    implicit_tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0

    @classmethod
    def parse(cls, url: str, sender: str) -> MailSettings:
        """From ``PBX_SMTP_URL`` and ``PBX_SMTP_FROM``; ``ValueError`` names no secret."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            raise ValueError("PBX_SMTP_URL must be smtp[s]://[user:password@]host[:port]") from None
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("PBX_SMTP_URL must be smtp[s]://[user:password@]host[:port]")
        if "@" not in sender or any(c in sender for c in "\r\n<>"):
            raise ValueError("PBX_SMTP_FROM must be a plain address like pbx@example.net")
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=port or (465 if tls else 25),
            sender=sender.strip(),
            implicit_tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def masked(email: str) -> str:
    """``alice@acme.example.com`` -> ``a...@acme.example.com``: where a link went, without
    handing the full address to whoever reads the page."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}...@{domain}"


def link_message(link: InviteLink, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = link.email
    expires = link.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    if link.purpose == RESET:
        message["Subject"] = "Reset your PBX portal password"
        intro = "Someone asked to reset the password of your PBX portal account."
        outro = "If it was not you, ignore this mail: your password stays as it is."
    else:
        message["Subject"] = "Your PBX portal invitation"
        intro = "You were invited to the PBX portal. Choose your password here:"
        outro = "If you did not expect this, ignore this mail."
    second = "\nThe page also enrols an authenticator app (TOTP).\n" if link.totp_required else ""
    message.set_content(
        f"{intro}\n\n{link.url}\n\nThe link works once, until {expires} UTC.\n{second}\n{outro}\n"
    )
    return message


class Mailer:
    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings

    async def send_link(self, link: InviteLink) -> str:
        """Mail the link to the person; returns the masked address. ``Unavailable`` when the
        server refuses or cannot be reached (the link is then lost: issue a new one)."""
        cfg = self.settings
        try:
            await aiosmtplib.send(
                link_message(link, cfg.sender),
                hostname=cfg.host,
                port=cfg.port,
                username=cfg.username,
                password=cfg.password,
                use_tls=cfg.implicit_tls,
                timeout=cfg.timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            # the exception's text may quote the server; never the link, never the password
            log.warning("mail to %s failed: %s", masked(link.email), type(exc).__name__)
            raise Unavailable("the mail could not be sent: try again later") from exc
        log.info("%s link mailed to %s", link.purpose, masked(link.email))
        return masked(link.email)
