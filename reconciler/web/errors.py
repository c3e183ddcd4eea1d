"""The portal's exception tree: each error carries a stable code (the JSON API's
``{"error": {"code", "message"}}``) and an HTTP status; pages and API render the same error.

Exceptions::

    PortalError                       500 internal
    ├── BadRequest                    400 bad_request
    ├── Unauthenticated               401 unauthenticated
    │   └── AccessRemoved             401 access_removed  (a session of someone git dropped)
    ├── CsrfRejected                  403 csrf
    ├── Forbidden                     403 forbidden       (visible, but not yours to change)
    ├── NotFound                      404 not_found       (unknown, or another tenant's)
    ├── MethodNotAllowed              405 method_not_allowed
    ├── RateLimited                   429 rate_limited
    ├── SwitchUnavailable             502 switch_unavailable (no switch took a change)
    └── Unavailable                   503 unavailable     (database not reachable yet)
        └── Busy                      503 unavailable     (too many password checks queued)

``NotFound`` is deliberately the answer for anything the caller may not see: an id of
another tenant and an unknown id are indistinguishable.
"""

from __future__ import annotations

from reconciler.core.errors import Permanent


class PortalError(Permanent):
    status = 500
    code = "internal"
    default_message = "internal error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message


class BadRequest(PortalError):
    status = 400
    code = "bad_request"
    default_message = "the request is not valid"


class Unauthenticated(PortalError):
    status = 401
    code = "unauthenticated"
    default_message = "log in first"


class AccessRemoved(Unauthenticated):
    """A valid session or token of a person the applied state no longer declares: said to
    them (a page ends the session and the login page says why), never to anyone else."""

    code = "access_removed"
    default_message = "your access was removed in git: ask an administrator"


class CsrfRejected(PortalError):
    status = 403
    code = "csrf"
    default_message = "missing or wrong CSRF token: reload the page and try again"


class Forbidden(PortalError):
    status = 403
    code = "forbidden"
    default_message = "your role does not allow this"


class NotFound(PortalError):
    status = 404
    code = "not_found"
    default_message = "not found"


class MethodNotAllowed(PortalError):
    status = 405
    code = "method_not_allowed"
    default_message = "method not allowed"


class RateLimited(PortalError):
    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: float) -> None:
        minutes = max(1, round(retry_after / 60))
        super().__init__(f"too many attempts: try again in {minutes} minute(s)")
        self.retry_after = retry_after


class SwitchUnavailable(PortalError):
    """A runtime change (an agent's status) that no switch, or not every switch, took: the
    page says so and a script sees a status it cannot mistake for success."""

    status = 502
    code = "switch_unavailable"
    default_message = "no switch is connected: the status is unchanged, try again shortly"


class Unavailable(PortalError):
    status = 503
    code = "unavailable"
    default_message = "the database is not reachable yet: try again shortly"


def printable(text: str, field: str) -> str:
    """``text`` when it holds no control character (a NUL cannot even be stored): input
    from forms and JSON bodies passes here before it reaches the database."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise BadRequest(f"{field} holds a control character")
    return text


class Busy(Unavailable):
    """Refused before any work: every password-checking thread is taken and the queue is
    full. Cheap on purpose, so a burst of logins cannot queue without bound."""

    default_message = "too many logins at once: try again in a few seconds"

    def __init__(self, retry_after: float = 2.0) -> None:
        super().__init__()
        self.retry_after = retry_after
