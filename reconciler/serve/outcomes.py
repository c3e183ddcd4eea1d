"""The metric labels of an xml_curl request: its section and how it ended. Apart from the
answering (``serve.xmlcurl``) so the workers' board can be created before the templates and
the snapshot are imported (``pbx run`` spawns its workers first)."""

from __future__ import annotations

from enum import StrEnum


class Section(StrEnum):
    """The metric label of a request's section: a fixed set, whatever was asked."""

    DIRECTORY = "directory"
    DIALPLAN = "dialplan"
    CONFIGURATION = "configuration"
    OTHER = "other"


class Result(StrEnum):
    """How a request ended, for metrics and logs."""

    FOUND = "found"
    NOT_FOUND = "not_found"
    REJECTED = "rejected"  # a dialplan context that refuses the call
    ERROR = "error"  # a bug: answered "not found"
    BAD_REQUEST = "bad_request"  # 400: not a body FreeSWITCH would send
    TOO_LARGE = "too_large"  # 413
    TIMEOUT = "timeout"  # 408: the body did not arrive in time
    UNAUTHORIZED = "unauthorized"  # 401
