"""The OpenAPI 3.0 document of ``/api/v1``, built as data. The schemathesis tests generate
requests from it and check every answer against it, so it cannot drift from the handlers."""

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


def _obj(required: list[str], **props: Schema) -> Schema:
    return {"type": "object", "required": required, "properties": props}


def _s(nullable: bool = False, **extra: Any) -> Schema:
    return {"type": "string", **({"nullable": True} if nullable else {}), **extra}


def _i(**extra: Any) -> Schema:
    return {"type": "integer", **extra}


def _b() -> Schema:
    return {"type": "boolean"}


def _arr(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _live_agent() -> dict[str, Schema]:
    node = _obj(
        ["node", "status", "state"],
        node=_s(),
        status=_s(),
        state=_s(),
        calls_answered=_i(),
        last_status_change=_s(True),
    )
    return {"status": _s(True), "state": _s(True), "nodes": _arr(node)}


SCHEMAS: dict[str, Schema] = {
    "Error": _obj(
        ["error"], error=_obj(["code", "message"], code=_s(enum=ERROR_CODES), message=_s())
    ),
    "Me": _obj(
        ["email", "name", "super_admin", "tenants"],
        email=_s(),
        name=_s(),
        super_admin=_b(),
        tenants=_arr(_obj(["id", "name", "role"], id=_s(), name=_s(), role=_s())),
    ),
    "TenantSummary": _obj(
        ["id", "name", "domain", "lifecycle", "sync", "spec_errors"],
        id=_s(),
        name=_s(),
        domain=_s(),
        lifecycle=_s(),
        sync=_s(enum=["invalid", "out of sync", "orphaned", "suspended", "synced"]),
        applied_revision=_s(True),
        attempted_revision=_s(True),
        last_reconcile=_s(True),
        last_error=_s(True),
        spec_errors=_arr(_s()),
        extensions=_i(),
        users=_i(),
        queues=_i(),
    ),
    "Registration": _obj(
        ["node", "contact", "user_agent", "status"],
        node=_s(),
        contact=_s(),
        user_agent=_s(),
        network_ip=_s(),
        network_port=_i(),
        status=_s(),
        expires_at=_s(True),
    ),
    "Extension": _obj(
        ["number", "name", "enabled", "registered", "registrations"],
        number=_s(),
        name=_s(),
        enabled=_b(),
        caller_id_name=_s(True),
        caller_id_number=_s(True),
        registered=_b(),
        registrations=_arr(_ref("Registration")),
        own=_b(),
        can_handle_credentials=_b(),
    ),
    "Agent": _obj(
        ["name", "queues", "can_set_status", "status"],
        name=_s(),
        extension=_s(True),
        contact=_s(),
        type=_s(),
        queues=_arr(_s()),
        can_set_status=_b(),
        **_live_agent(),
    ),
    "Queue": _obj(
        ["name", "number", "waiting", "members", "agents"],
        name=_s(),
        number=_s(),
        strategy=_s(),
        waiting=_i(),
        members=_arr(
            _obj(
                ["state"],
                caller_number=_s(),
                caller_name=_s(),
                state=_s(),
                joined_at=_s(True),
                serving_agent=_s(True),
                node=_s(),
            )
        ),
        agents=_arr(_obj(["name"], name=_s(), level=_i(), position=_i(), **_live_agent())),
    ),
    "TenantDetail": _obj(
        ["tenant", "role", "extensions", "agents"],
        tenant=_ref("TenantSummary"),
        role=_s(),
        extensions=_arr(_ref("Extension")),
        agents=_arr(_ref("Agent")),
        queues=_arr(_ref("Queue")),
        nodes_connected=_i(),
        nodes_total=_i(),
        inbound_numbers=_arr(
            _obj(
                ["number", "destination_kind", "destination"],
                number=_s(),
                destination_kind=_s(),
                destination=_s(),
            )
        ),
        users=_arr(
            _obj(["email", "role"], email=_s(), name=_s(), role=_s(), extensions=_arr(_s()))
        ),
    ),
    "History": _obj(
        ["id", "scope", "tenant", "at", "action", "result"],
        id=_i(),
        scope=_s(enum=["tenant", "platform"]),
        tenant=_s(True, description="null for the platform scope (_platform.yaml)"),
        at=_s(),
        action=_s(),
        result=_s(),
        revision=_s(True),
        dirty={"type": "boolean", "nullable": True},
        host=_s(),
        changes=_i(),
        error=_s(True),
    ),
    "Audit": _obj(
        ["id", "at", "action", "result"],
        id=_i(),
        at=_s(),
        actor=_s(True),
        tenant=_s(True),
        action=_s(),
        target=_s(True),
        result=_s(),
        client_addr=_s(True),
        detail=_s(True),
    ),
    "Node": _obj(
        ["name", "connected"],
        name=_s(),
        connected=_b(),
        last_sync=_s(True),
        drift_repairs=_i(),
        unmanaged=_arr(_s()),
        errors=_arr(_s()),
    ),
    "Session": _obj(
        ["id", "email", "created_at", "expires_at"],
        id=_i(),
        email=_s(),
        created_at=_s(),
        last_seen_at=_s(),
        expires_at=_s(),
        client_addr=_s(True),
        user_agent=_s(True),
        current=_b(),
    ),
    "LoginLock": _obj(
        ["email", "failures", "retry_after"], email=_s(), failures=_i(), retry_after=_i()
    ),
    "Token": _obj(
        ["id", "email", "name", "created_at", "expires_at"],
        id=_i(),
        email=_s(),
        name=_s(),
        created_at=_s(),
        last_used_at=_s(True),
        expires_at=_s(True),
    ),
}

TENANT = {
    "name": "tenant",
    "in": "path",
    "required": True,
    "schema": _s(pattern="^[a-z][a-z0-9_]{1,30}$"),
}
NUMBER = {"name": "number", "in": "path", "required": True, "schema": _s(pattern="^[0-9]{1,15}$")}
AGENT = {
    "name": "agent",
    "in": "path",
    "required": True,
    "schema": _s(pattern="^[a-z][a-z0-9_-]{0,62}$"),
}
ID = {"name": "id", "in": "path", "required": True, "schema": _i(minimum=1, maximum=10**17)}
LIMIT = {"name": "limit", "in": "query", "required": False, "schema": _i(minimum=1, maximum=500)}
OFFSET = {
    "name": "offset",
    "in": "query",
    "required": False,
    "schema": _i(minimum=0, maximum=10**8),
}


def _error(description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


ERRORS = {
    "400": _error("invalid request"),
    "401": _error("not logged in, or unknown/revoked token"),
    "403": _error("CSRF token missing, or the role does not allow it"),
    "404": _error("unknown, or not visible to the caller (another tenant's ids look unknown)"),
    "503": _error("database not reachable yet"),
}


def _op(
    summary: str,
    ok: Schema | None,
    *,
    params: list[Schema] | None = None,
    body: Schema | None = None,
    status: str = "200",
    public: bool = False,
) -> Schema:
    responses: dict[str, Any] = {
        status: {"description": "ok"}
        if ok is None
        else {"description": "ok", "content": {"application/json": {"schema": ok}}},
    }
    responses.update(ERRORS)
    op: Schema = {"summary": summary, "parameters": params or [], "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if public:
        op["security"] = []
    return op


def _list(key: str, item: str) -> Schema:
    return _obj([key], **{key: _arr(_ref(item))})


T, E = "/tenants/{tenant}", "/tenants/{tenant}/extensions/{number}"


def _tenant_paths() -> dict[str, Any]:
    t, e = T, E
    return {
        "/openapi.json": {"get": _op("this document", {"type": "object"}, public=True)},
        "/me": {"get": _op("who am I, and my tenants", _ref("Me"))},
        "/tenants": {
            "get": _op(
                "visible tenants with their sync state",
                _obj(["total", "tenants"], total=_i(), tenants=_arr(_ref("TenantSummary"))),
                params=[
                    LIMIT,
                    OFFSET,
                    {"name": "sync", "in": "query", "required": False, "schema": _s()},
                ],
            )
        },
        t: {
            "get": _op("one tenant as the caller may see it", _ref("TenantDetail"), params=[TENANT])
        },
        t + "/extensions": {
            "get": _op(
                "visible extensions with live registrations",
                _list("extensions", "Extension"),
                params=[TENANT],
            )
        },
        e: {"get": _op("one extension", _ref("Extension"), params=[TENANT, NUMBER])},
    }


def _tenant_action_paths() -> dict[str, Any]:
    t, e = T, E
    return {
        e + "/credentials/reveal": {
            "post": _op(
                "SIP credentials (owner or tenant admin; audited)",
                _obj(["username", "domain", "password"], username=_s(), domain=_s(), password=_s()),
                params=[TENANT, NUMBER],
            )
        },
        e + "/credentials/rotate": {
            "post": _op(
                "new SIP password (owner or tenant admin; audited)",
                _obj(["rotated"], rotated=_b()),
                params=[TENANT, NUMBER],
            )
        },
        t + "/agents": {
            "get": _op("visible agents with live status", _list("agents", "Agent"), params=[TENANT])
        },
        t + "/agents/{agent}/status": {
            "put": _op(
                "set one of your agents' status",
                _obj(
                    ["agent", "status", "results"],
                    agent=_s(),
                    status=_s(),
                    results=_arr(_obj(["node", "ok"], node=_s(), ok=_b(), error=_s(True))),
                ),
                params=[TENANT, AGENT],
                body=_obj(["status"], status=_s(enum=["Available", "On Break", "Logged Out"])),
            )
        },
        t + "/queues": {
            "get": _op(
                "queues with waiting callers (admins)", _list("queues", "Queue"), params=[TENANT]
            )
        },
        t + "/history": {
            "get": _op(
                "apply history (admins)", _list("history", "History"), params=[TENANT, LIMIT]
            )
        },
        t + "/audit": {
            "get": _op("audit trail (admins)", _list("audit", "Audit"), params=[TENANT, LIMIT])
        },
    }


def _platform_paths() -> dict[str, Any]:
    return {
        "/nodes": {"get": _op("switch nodes (super admins)", _list("nodes", "Node"))},
        "/history": {
            "get": _op(
                "apply history of every tenant (super admins)",
                _list("history", "History"),
                params=[LIMIT],
            )
        },
        "/audit": {
            "get": _op("audit trail (super admins)", _list("audit", "Audit"), params=[LIMIT])
        },
        "/search": {
            "get": _op(
                "search tenants, extensions, users (super admins)",
                _obj(
                    ["hits"],
                    hits=_arr(
                        _obj(
                            ["kind", "tenant", "key", "label"],
                            kind=_s(),
                            tenant=_s(),
                            key=_s(),
                            label=_s(),
                        )
                    ),
                ),
                params=[{"name": "q", "in": "query", "required": False, "schema": _s()}],
            )
        },
    }


ALL = {"name": "all", "in": "query", "required": False, "schema": _s(enum=["true", "false"])}


def _account_paths() -> dict[str, Any]:
    return {
        "/invitations": {
            "post": _op(
                "invite a person declared in git who has no account yet (single-use "
                "activation link: mailed to them when mail is configured, else in url; "
                "a session is needed, an API token is refused)",
                _obj(
                    ["email", "url", "sent_to", "expires_at", "totp_required"],
                    email=_s(),
                    url=_s(True),
                    sent_to=_s(True),
                    expires_at=_s(),
                    totp_required=_b(),
                ),
                body=_obj(["email"], email=_s()),
                status="201",
            )
        },
        "/resets": {
            "post": _op(
                "mail a password reset link to a person with an account whom you may invite "
                "(needs mail configured and a session)",
                _obj(
                    ["email", "sent_to", "expires_at"],
                    email=_s(),
                    sent_to=_s(True),
                    expires_at=_s(),
                ),
                body=_obj(["email"], email=_s()),
                status="201",
            )
        },
        "/tokens": {
            "get": _op(
                "your API tokens (all=true: everyone's, super admins)",
                _list("tokens", "Token"),
                params=[ALL],
            ),
            "post": _op(
                "create an API token (shown once; expires after days, default 90; a session "
                "is needed, an API token is refused)",
                _obj(["id", "token"], id=_i(), token=_s()),
                body=_obj(["name"], name=_s(), days=_i(minimum=1)),
                status="201",
            ),
        },
        "/tokens/{id}": {
            "delete": _op(
                "revoke an API token (yours; anyone's for super admins)",
                None,
                params=[ID],
                status="204",
            )
        },
        "/revocations": {
            "post": _op(
                "end every session, API token and pending link of a person (yourself; "
                "anyone for super admins)",
                _obj(
                    ["sessions", "tokens", "invitations"],
                    sessions=_i(),
                    tokens=_i(),
                    invitations=_i(),
                ),
                body=_obj(["email"], email=_s()),
            )
        },
        "/sessions": {
            "get": _op(
                "your sessions (all=true: everyone's, super admins)",
                _list("sessions", "Session"),
                params=[ALL],
            )
        },
        "/sessions/{id}": {
            "delete": _op(
                "end a session (yours; anyone's for super admins)", None, params=[ID], status="204"
            )
        },
    }


def _login_lock_paths() -> dict[str, Any]:
    return {
        "/login-locks": {
            "get": _op(
                "accounts this daemon's login throttle holds back (super admins)",
                _list("locks", "LoginLock"),
            )
        },
        "/login-locks/clear": {
            "post": _op(
                "lift every login throttle of one account on this daemon (super admins; audited)",
                _obj(["email", "forgotten"], email=_s(), forgotten=_i()),
                body=_obj(["email"], email=_s()),
            )
        },
    }


def openapi_document(base_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "pbx-reconciler portal API", "version": "1"},
        "servers": [{"url": base_url + "/api/v1"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            **_tenant_paths(),
            **_tenant_action_paths(),
            **_platform_paths(),
            **_account_paths(),
            **_login_lock_paths(),
        },
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
