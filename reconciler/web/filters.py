"""Template filters for what every table row shows (status pills, times, revisions): plain
Python building escaped ``Markup`` costs a fraction of a Jinja macro call, which matters on
pages with hundreds of rows (bench/bench_portal.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import jinja2
from markupsafe import Markup

_NOT_CLASS = re.compile(r"[^a-z0-9]+")


def pill(text: object, kind: object = None) -> Markup:
    """A status pill; its colour class comes from the status text (see portal.css)."""
    label = str(text)
    css = _NOT_CLASS.sub("-", str(kind or label).lower()).strip("-")
    return Markup('<span class="pill pill-{}">{}</span>').format(css, label)


def when(iso: str | datetime | None) -> Markup:
    """A moment as ``<time>``: the server's text is UTC and says so; the page's script
    (static/portal.js) turns it into the reader's "5 min ago", the local time on hover."""
    if not iso:
        return Markup('<span class="muted">never</span>')
    try:
        at = iso if isinstance(iso, datetime) else datetime.fromisoformat(iso)
    except ValueError:
        return Markup("<span>{}</span>").format(iso)
    utc = (at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)).isoformat()
    text = utc[:16].replace("T", " ") + " UTC"
    return Markup('<time datetime="{}" title="{}">{}</time>').format(utc, text, text)


def rev(value: str | None) -> Markup:
    if not value:
        return Markup('<span class="muted">none</span>')
    return Markup('<code title="{}">{}</code>').format(value, value[:10])


def install(env: jinja2.Environment) -> None:
    env.filters.update(pill=pill, when=when, rev=rev)
