"""Template filters for what every table row shows (status pills, times, revisions): plain
Python building escaped ``Markup`` costs a fraction of a Jinja macro call, which matters on
pages with hundreds of rows (bench/bench_portal.py)."""

from __future__ import annotations

import re

import jinja2
from markupsafe import Markup

_NOT_CLASS = re.compile(r"[^a-z0-9]+")


def pill(text: object, kind: object = None) -> Markup:
    """A status pill; its colour class comes from the status text (see portal.css)."""
    label = str(text)
    css = _NOT_CLASS.sub("-", str(kind or label).lower()).strip("-")
    return Markup('<span class="pill pill-{}">{}</span>').format(css, label)


def when(iso: str | None) -> Markup:
    if not iso:
        return Markup('<span class="muted">never</span>')
    return Markup('<time datetime="{}">{}</time>').format(iso, iso[:19].replace("T", " "))


def rev(value: str | None) -> Markup:
    if not value:
        return Markup('<span class="muted">none</span>')
    return Markup('<code title="{}">{}</code>').format(value, value[:10])


def install(env: jinja2.Environment) -> None:
    env.filters.update(pill=pill, when=when, rev=rev)
