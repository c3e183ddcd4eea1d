"""The JSON Schema of a tenant file, generated from the pydantic models.

A committed copy (``specs_schema/tenant.schema.json``) lets editors validate YAML as people
type (``# yaml-language-server: $schema=...``); a test fails when it drifts from the models.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from specs_schema.models import PlatformSpec, TenantSpec

SCHEMA_FILE = "tenant.schema.json"
SCHEMA_ID = "https://pbx-reconciler.invalid/schemas/tenant.schema.json"


def tenant_json_schema() -> dict[str, Any]:
    schema = TenantSpec.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }


def render_schema() -> str:
    """Stable text: sorted keys, trailing newline, so the committed copy diffs cleanly."""
    return json.dumps(tenant_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def committed_schema() -> str:
    return resources.files("specs_schema").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


PLATFORM_SCHEMA_FILE = "platform.schema.json"
PLATFORM_SCHEMA_ID = "https://pbx-reconciler.invalid/schemas/platform.schema.json"


def platform_json_schema() -> dict[str, Any]:
    """``_platform.yaml``'s schema (super admins, carrier gateways, retention)."""
    schema = PlatformSpec.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": PLATFORM_SCHEMA_ID,
        **schema,
    }


def render_platform_schema() -> str:
    return json.dumps(platform_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def committed_platform_schema() -> str:
    return resources.files("specs_schema").joinpath(PLATFORM_SCHEMA_FILE).read_text("utf-8")
