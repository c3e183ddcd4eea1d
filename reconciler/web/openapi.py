"""The OpenAPI 3.0 document of ``/api/v1``, built as data: the shared schemas, parameters and
error answers, and the helpers each feature builds its paths with (``Feature.openapi_paths``).
The schemathesis tests generate requests from the assembled document and check every answer
against it, so it cannot drift from the handlers."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

ERROR_CODES = [
    "bad_request",
    "unauthenticated",
    "login_failed",
    "csrf",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "rate_limited",
    "unavailable",
    "internal",
]


def obj(required: list[str], **props: Schema) -> Schema:
    return {"type": "object", "required": required, "properties": props}


def string(nullable: bool = False, **extra: Any) -> Schema:
    return {"type": "string", **({"nullable": True} if nullable else {}), **extra}


def integer(**extra: Any) -> Schema:
    return {"type": "integer", **extra}


def boolean() -> Schema:
    return {"type": "boolean"}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _live_agent() -> dict[str, Schema]:
    node = obj(
        ["node", "status", "state"],
        node=string(),
        status=string(),
        state=string(),
        calls_answered=integer(),
        last_status_change=string(True),
    )
    return {"status": string(True), "state": string(True), "nodes": array(node)}


SCHEMAS: dict[str, Schema] = {
    "Error": obj(
        ["error"], error=obj(["code", "message"], code=string(enum=ERROR_CODES), message=string())
    ),
    "Me": obj(
        ["email", "name", "super_admin", "tenants"],
        email=string(),
        name=string(),
        super_admin=boolean(),
        tenants=array(obj(["id", "name", "role"], id=string(), name=string(), role=string())),
    ),
    "TenantSummary": obj(
        ["id", "name", "domain", "lifecycle", "sync", "spec_errors"],
        id=string(),
        name=string(),
        domain=string(),
        lifecycle=string(),
        sync=string(enum=["invalid", "out of sync", "orphaned", "suspended", "synced"]),
        applied_revision=string(True),
        attempted_revision=string(True),
        last_reconcile=string(True),
        last_error=string(True),
        spec_errors=array(string()),
        extensions=integer(),
        users=integer(),
        queues=integer(),
    ),
    "Registration": obj(
        ["node", "contact", "user_agent", "status"],
        node=string(),
        contact=string(),
        user_agent=string(),
        network_ip=string(),
        network_port=integer(),
        status=string(),
        expires_at=string(True),
    ),
    "Extension": obj(
        ["number", "name", "enabled", "registered", "registrations"],
        number=string(),
        name=string(),
        enabled=boolean(),
        caller_id_name=string(True),
        caller_id_number=string(True),
        registered=boolean(),
        registrations=array(ref("Registration")),
        own=boolean(),
        can_handle_credentials=boolean(),
    ),
    "Agent": obj(
        ["name", "queues", "can_set_status", "status"],
        name=string(),
        extension=string(True),
        contact=string(),
        type=string(),
        queues=array(string()),
        can_set_status=boolean(),
        **_live_agent(),
    ),
    "Queue": obj(
        ["name", "number", "waiting", "members", "agents"],
        name=string(),
        number=string(),
        strategy=string(),
        waiting=integer(),
        members=array(
            obj(
                ["state"],
                caller_number=string(),
                caller_name=string(),
                state=string(),
                joined_at=string(True),
                serving_agent=string(True),
                node=string(),
            )
        ),
        agents=array(
            obj(["name"], name=string(), level=integer(), position=integer(), **_live_agent())
        ),
    ),
    "TenantDetail": obj(
        ["tenant", "role", "extensions", "agents"],
        tenant=ref("TenantSummary"),
        role=string(),
        extensions=array(ref("Extension")),
        agents=array(ref("Agent")),
        queues=array(ref("Queue")),
        nodes_connected=integer(),
        nodes_total=integer(),
        inbound_numbers=array(
            obj(
                ["number", "destination_kind", "destination"],
                number=string(),
                destination_kind=string(),
                destination=string(),
            )
        ),
        users=array(
            obj(
                ["email", "role"],
                email=string(),
                name=string(),
                role=string(),
                extensions=array(string()),
            )
        ),
    ),
    "History": obj(
        ["id", "scope", "tenant", "at", "action", "result"],
        id=integer(),
        scope=string(enum=["tenant", "platform"]),
        tenant=string(True, description="null for the platform scope (_platform.yaml)"),
        at=string(),
        action=string(),
        result=string(),
        revision=string(True),
        dirty={"type": "boolean", "nullable": True},
        host=string(),
        changes=integer(),
        error=string(True),
    ),
    "Audit": obj(
        ["id", "at", "action", "result"],
        id=integer(),
        at=string(),
        actor=string(True),
        tenant=string(True),
        action=string(),
        target=string(True),
        result=string(),
        client_addr=string(True),
        detail=string(True),
    ),
    "Node": obj(
        ["name", "connected"],
        name=string(),
        connected=boolean(),
        last_sync=string(True),
        drift_repairs=integer(),
        unmanaged=array(string()),
        errors=array(string()),
    ),
    "Session": obj(
        ["id", "email", "created_at", "expires_at"],
        id=integer(),
        email=string(),
        created_at=string(),
        last_seen_at=string(),
        expires_at=string(),
        client_addr=string(True),
        user_agent=string(True),
        current=boolean(),
    ),
    "LoginLock": obj(
        ["email", "failures", "retry_after"],
        email=string(),
        failures=integer(),
        retry_after=integer(),
    ),
    "Token": obj(
        ["id", "email", "name", "created_at", "expires_at"],
        id=integer(),
        email=string(),
        name=string(),
        created_at=string(),
        last_used_at=string(True),
        expires_at=string(True),
    ),
}

TENANT = {
    "name": "tenant",
    "in": "path",
    "required": True,
    "schema": string(pattern="^[a-z][a-z0-9_]{1,30}$"),
}
NUMBER = {
    "name": "number",
    "in": "path",
    "required": True,
    "schema": string(pattern="^[0-9]{1,15}$"),
}
AGENT = {
    "name": "agent",
    "in": "path",
    "required": True,
    "schema": string(pattern="^[a-z][a-z0-9_-]{0,62}$"),
}
ID = {"name": "id", "in": "path", "required": True, "schema": integer(minimum=1, maximum=10**17)}
LIMIT = {
    "name": "limit",
    "in": "query",
    "required": False,
    "schema": integer(minimum=1, maximum=500),
}
OFFSET = {
    "name": "offset",
    "in": "query",
    "required": False,
    "schema": integer(minimum=0, maximum=10**8),
}


def error_answer(description: str) -> Schema:
    """An error answer of one operation beyond ``ERRORS`` (``operation(errors=...)``)."""
    return _error(description)


def _error(description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


ERRORS = {
    "400": _error("invalid request"),
    "401": _error("not logged in, or unknown/revoked token"),
    "403": _error("CSRF token missing, or the role does not allow it"),
    "404": _error("unknown, or not visible to the caller (another tenant's ids look unknown)"),
    "503": _error("database not reachable yet"),
}


def operation(
    summary: str,
    ok: Schema | None,
    *,
    params: list[Schema] | None = None,
    body: Schema | None = None,
    status: str = "200",
    public: bool = False,
    errors: dict[str, Schema] | None = None,
) -> Schema:
    responses: dict[str, Any] = {
        status: {"description": "ok"}
        if ok is None
        else {"description": "ok", "content": {"application/json": {"schema": ok}}},
    }
    responses.update(ERRORS)
    responses.update(errors or {})
    op: Schema = {"summary": summary, "parameters": params or [], "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if public:
        op["security"] = []
    return op


def list_of(key: str, item: str) -> Schema:
    return obj([key], **{key: array(ref(item))})


ALL = {"name": "all", "in": "query", "required": False, "schema": string(enum=["true", "false"])}


def document(base_url: str, paths: dict[str, Any]) -> dict[str, Any]:
    """The whole document around ``paths`` (every feature's, ``feature.api_paths``)."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "pbx-reconciler portal API", "version": "1"},
        "servers": [{"url": base_url + "/api/v1"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API token created on /account or POST /tokens",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "pbx_session",
                    "description": "browser session; writes also need X-CSRF-Token",
                },
            },
        },
    }
