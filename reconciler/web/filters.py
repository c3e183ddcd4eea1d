"""Template filters for what every table row shows (status pills, times, revisions): plain
Python building escaped ``Markup`` costs a fraction of a Jinja macro call, which matters on
pages with hundreds of rows (bench/bench_portal.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import partial

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


_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")


def rev(value: str | None, url: str | None = None) -> Markup:
    """A git revision; a link to its commit when a revision URL template is set (and the
    value is a commit id: nothing else is ever put into the link)."""
    if not value:
        return Markup('<span class="muted">none</span>')
    code = Markup('<code title="{}">{}</code>').format(value, value[:10])
    if url is None or not _COMMIT.match(value):
        return code
    href = url.replace("{revision}", value, 1)
    label = f"commit {value[:10]}"
    return Markup('<a href="{}" rel="noopener" aria-label="{}">{}</a>').format(href, label, code)


def install(env: jinja2.Environment, revision_url: str | None = None) -> None:
    """``revision_url``: ``--portal-revision-url``, already validated (https, one
    ``{revision}``)."""
    env.filters.update(pill=pill, when=when, rev=partial(rev, url=revision_url))
