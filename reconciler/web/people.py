"""People of a tenant as its admins (and super admins) follow them: who is active, who is
invited and until when, whose invitation ran out, who was never invited, and each one's last
login. A page, ``/t/{tenant}/people``, and ``GET /api/v1/tenants/{tenant}/people``.

Who is declared comes from git (the applied state); where each stands comes from the
portal's own tables (accounts, unused invitations, the audit trail's logins)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from reconciler.store.accounts import PersonAccess, people_access
from reconciler.web.access import TenantScope
from reconciler.web.context import portal_of, render, scope
from reconciler.web.feature import Feature
from reconciler.web.handling import V1, ok
from reconciler.web.openapi import TENANT, array, obj, operation, string

routes = web.RouteTableDef()
STANDINGS = ("active", "invited", "invitation expired", "not invited")


def standing(access: PersonAccess | None, now: datetime) -> str:
    """One of ``STANDINGS``: an account wins over any invitation."""
    if access is None:
        return "not invited"
    if access.active:
        return "active"
    if access.invitation_expires_at is None:
        return "not invited"
    return "invited" if access.invitation_expires_at > now else "invitation expired"


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


async def people_of(request: web.Request, sc: TenantScope) -> list[dict[str, Any]]:
    users = sc.state.users
    access = await portal_of(request).db.run(people_access, list(users))
    now = datetime.now(UTC)
    rows = []
    for email in sorted(users):
        user, found = users[email], access.get(email)
        rows.append(
            {
                "email": email,
                "name": user.name,
                "role": user.role,
                "extensions": list(user.extensions),
                "standing": standing(found, now),
                "invited_at": _iso(found.invited_at) if found and not found.active else None,
                "invitation_expires_at": _iso(found.invitation_expires_at)
                if found and not found.active
                else None,
                "last_login_at": _iso(found.last_login_at) if found else None,
            }
        )
    return rows


@routes.get("/t/{tenant}/people")
async def people_page(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    sc.require_all()
    return render(request, "people.html", scope=sc, people=await people_of(request, sc))


@routes.get(V1 + "/tenants/{tenant}/people")
async def api_people(request: web.Request) -> web.StreamResponse:
    sc = scope(request, request.match_info["tenant"])
    sc.require_all()
    return ok({"people": await people_of(request, sc)})


def _paths() -> dict[str, Any]:
    person = obj(
        ["email", "name", "role", "extensions", "standing", "last_login_at"],
        email=string(),
        name=string(),
        role=string(),
        extensions=array(string()),
        standing=string(enum=list(STANDINGS)),
        invited_at=string(True, format="date-time"),
        invitation_expires_at=string(True, format="date-time"),
        last_login_at=string(True, format="date-time"),
    )
    return {
        "/tenants/{tenant}/people": {
            "get": operation(
                "the tenant's people: active, invited (until when), last login (admins)",
                obj(["people"], people=array(person)),
                params=[TENANT],
            )
        }
    }


FEATURE = Feature(name="people", routes=(routes,), openapi_paths=_paths)
