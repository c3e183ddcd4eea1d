"""How long each tenant keeps its audio, and which files are past it: pure decisions.

A tenant's ``retention`` (``{voicemail: 30d, recordings: 90d}``) wins over the platform's
defaults in ``_platform.yaml``; recordings neither declares are kept forever, voicemail 90
days, and a box may keep its messages for its own ``voicemail.retention``. The daemon's
leader applies the decision: recordings by unlinking (``daemon/audio.py``), voicemail through
mod_voicemail's ``vm_delete`` (``daemon/voicemail_retention.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from reconciler.core.voicemail_box import VoicemailMessage
from specs_schema.models import Retention

DAY = 86400.0
KINDS = ("recordings", "voicemail")


def days(value: str | None) -> int | None:
    """``"90d"`` -> 90; None stays None (kept forever)."""
    return int(value.removesuffix("d")) if value else None


@dataclass(frozen=True)
class RetentionPolicy:
    """Days to keep each kind (None: forever)."""

    recordings: int | None = None
    voicemail: int | None = None

    def max_age(self, kind: str) -> float | None:
        kept = getattr(self, kind)
        return None if kept is None else kept * DAY


def policy(tenant: Retention, platform: Retention | None) -> RetentionPolicy:
    """The tenant's own values, else the platform's."""
    fallback = platform or Retention()
    return RetentionPolicy(
        recordings=days(tenant.recordings or fallback.recordings),
        voicemail=days(tenant.voicemail or fallback.voicemail),
    )


def expired(files: Iterable[tuple[str, float]], max_age: float | None, now: float) -> list[str]:
    """The relative paths among ``(path, mtime)`` older than ``max_age`` seconds."""
    if max_age is None:
        return []
    return sorted(path for path, mtime in files if now - mtime > max_age)


VOICEMAIL_DAYS = 90
"""How long a voicemail message is kept when neither its box, its tenant nor the platform
says: a box is a phone's inbox, not an archive (the lamp stays lit for a forgotten one)."""


def voicemail_days(box: str | None, kept: RetentionPolicy) -> int:
    """A box's own ``retention``, else its tenant's (or the platform's), else the default."""
    return days(box) or kept.voicemail or VOICEMAIL_DAYS


def expired_messages(
    messages: Iterable[VoicemailMessage], kept_days: int, now: datetime
) -> list[VoicemailMessage]:
    """The messages left more than ``kept_days`` ago, heard or not."""
    cutoff = now - timedelta(days=kept_days)
    return [m for m in messages if m.created < cutoff]


def policies(
    tenants: Mapping[str, Retention], platform: Retention | None
) -> dict[str, RetentionPolicy]:
    return {tenant: policy(retention, platform) for tenant, retention in tenants.items()}
