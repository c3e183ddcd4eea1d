"""TOTP second factor (RFC 6238, 30 s steps, 6 digits) for super admins, and the QR codes
the portal shows (the otpauth URI to enrol, a SIP URI to provision a phone).

A code is accepted for the current step and one step either side (clock skew); the step
it matched is returned so the caller records it and the same code cannot be replayed.
"""

from __future__ import annotations

import time

import pyotp
import segno

ISSUER = "pbx-reconciler"


def new_secret() -> str:
    return pyotp.random_base32()


def enrol_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step ``code`` is valid for (±1 step), or None."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    at = time.time() if now is None else now
    step = totp.timecode(at)
    for candidate in (step, step - 1, step + 1):
        if pyotp.utils.strings_equal(totp.generate_otp(candidate), code):
            return candidate
    return None


def qr_data_uri(text: str) -> str:
    """An SVG QR code as a ``data:`` URI (allowed by the CSP's ``img-src data:``)."""
    uri: str = segno.make(text, error="m").svg_data_uri(
        scale=4, border=2, dark="#111", light="#fff"
    )
    return uri
