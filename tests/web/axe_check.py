"""axe-core run inside the page by the browser tests. axe comes from the npm registry
(tests/web/axe/package.json and its lock; `npm ci` there, as .ci/run does): its absence is
a failure with the command that fixes it, never a skip."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

AXE_DIR = Path(__file__).parent / "axe"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")


@cache
def axe_source() -> str:
    if not AXE_JS.exists():
        pytest.fail(f"axe-core is missing ({AXE_JS}): run `npm ci` in {AXE_DIR} (.ci/run does)")
    return AXE_JS.read_text(encoding="utf-8")


def blocking_violations(page: Page) -> list[str]:
    """Serious and critical axe violations on the page as it is now, one line per node."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=axe_source())
    result: dict[str, Any] = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['impact']} {v['id']} ({v['help']}) on {len(v['nodes'])} element(s), first "
        f"{v['nodes'][0]['target']}: {v['nodes'][0].get('failureSummary', '')}"
        for v in result["violations"]
        if v["impact"] in BLOCKING
    ]
