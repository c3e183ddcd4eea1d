"""Screenshots of the main pages for docs/portal.md, from a demo platform (fake tenants,
fake secrets, blurred anyway), on a desktop and a 390 px phone, light and dark (the
system's prefers-color-scheme). Rerun after a UI change:

    .venv/bin/python -m tests.web.screenshots [--out docs/screenshots]

Needs the machine's PostgreSQL (PBX_TEST_SERVER_DSN, default 127.0.0.1:5432) and Chromium.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

from reconciler.core.desired import tenant_state_from_spec
from specs_schema.models import TenantSpec
from tests.fakes.portal import SUPER, FakePortalDeps, history_entry
from tests.web.browser import launch, log_in
from tests.web.live_server import live_portal, scratch_database

SERVER = os.environ.get("PBX_TEST_SERVER_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def populate(deps: FakePortalDeps) -> None:
    """A believable platform: more tenants, live phones, agents, callers, history, trouble."""
    state = dict(deps.state)
    for n, name in enumerate(["northwind", "umbrella", "hooli", "stark", "wayne", "cyberdyne"]):
        spec = TenantSpec.model_validate(
            {
                "id": name,
                "domain": f"{name}.example.net",
                "name": name.capitalize(),
                "extensions": [
                    {"number": f"{n + 4}{i:03d}", "name": f"Desk {i}"} for i in range(40)
                ],
            }
        )
        state[name] = tenant_state_from_spec(spec)
    deps.replace_state(state)
    deps.__post_init__()
    deps.sync["umbrella"] = replace(
        deps.sync["umbrella"],
        spec_errors=(
            "tenants.d/umbrella.yaml:14:7: extensions.2.number: '12' is shorter than 3 digits",
            "tenants.d/umbrella.yaml:31:5: queues.0.tiers.1.agent: no agent 'zed' in this tenant",
        ),
        last_error="invalid spec (2 error(s)); left at last applied state",
    )
    deps.sync["hooli"] = replace(
        deps.sync["hooli"],
        spec_digest="d2",
        last_error="tenant hooli: duplicate key value (constraint queues_number_key)",
        attempted_revision="9c1d77aa03ef",
    )
    deps.history_rows = [
        history_entry(t, n)
        for n, t in enumerate(["acme", "hooli", "umbrella", "acme", "globex", "stark"], start=1)
    ]
    deps.history_rows[1] = history_entry(
        "hooli", 2, "failed", "duplicate key value (constraint queues_number_key)"
    )
    presence = deps.presence
    presence.nodes = ("fs1:8021", "fs2:8021")
    presence.register("acme.example.com", "1001", "Yealink SIP-T46U 108.86.0.90", "198.51.100.21")
    presence.register("acme.example.com", "1002", "Grandstream GXP2170 1.0.11", "198.51.100.22")
    presence.register("acme.example.com", "1010", "Linphone Android 5.2.5", "203.0.113.40")
    presence.agent("acme.example.com", "alice", "Available", "Waiting")
    presence.agent("acme.example.com", "bob", "On Break", "Waiting")
    presence.agent("acme.example.com", "bob2", "Available", "In a queue call")
    presence.agent("acme.example.com", "dave", "Logged Out", "Idle")
    presence.caller("acme.example.com", "support", "+14155550142", "J. Customer")
    presence.caller("acme.example.com", "support", "+442071838750", "")
    deps.node_list = [
        replace(deps.node_list[0], name="fs1:8021", last_sync=datetime.now(UTC)),
        replace(
            deps.node_list[0],
            name="fs2:8021",
            connected=False,
            drift_repairs=0,
            unmanaged=(),
            errors=("connection refused; retrying in 8 s",),
        ),
    ]


def shoot(page: Page, path: Path, full: bool = True) -> None:
    page.wait_for_timeout(300)
    page.screenshot(path=str(path), full_page=full)
    print(f"wrote {path}")


SHOTS = (
    (SUPER, "super-admin-overview", "/platform"),
    ("alice@acme.example.com", "tenant-admin", "/t/acme"),
    ("bob@acme.example.com", "agent", "/t/acme"),
    ("carol@acme.example.com", "member-credentials", "/t/acme/extensions/1010"),
    ("alice@acme.example.com", "queue-wallboard", "/t/acme/queues/support/wallboard"),
)
# name suffix -> browser context options: desktop and a 390 px phone, light and dark.
VARIANTS: dict[str, dict[str, Any]] = {
    "": {"viewport": {"width": 1280, "height": 900}, "color_scheme": "light"},
    "-dark": {"viewport": {"width": 1280, "height": 900}, "color_scheme": "dark"},
    "-phone": {
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "color_scheme": "light",
    },
    "-phone-dark": {
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "color_scheme": "dark",
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    with scratch_database(SERVER) as dsn, live_portal(dsn) as portal, sync_playwright() as pw:
        populate(portal.deps)
        secrets = {email: portal.account(email) for email in dict.fromkeys(e for e, _, _ in SHOTS)}
        browser = launch(pw)
        for suffix, options in VARIANTS.items():
            for email, name, path in SHOTS:
                context = browser.new_context(bypass_csp=True, **options)
                page = context.new_page()
                log_in(page, portal, email, secrets[email])
                page.goto(portal.url + path)
                if name == "member-credentials":
                    page.get_by_role("button", name=re.compile("Reveal credentials")).click()
                    # fake tenant, blurred all the same
                    page.evaluate("document.body.classList.add('blurred')")
                shoot(page, out / f"{name}{suffix}.png")
                context.close()
        browser.close()


if __name__ == "__main__":
    main()
