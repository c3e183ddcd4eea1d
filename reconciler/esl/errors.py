"""The exception tree of the ESL client, shared by its frames, router, connection and client.

In a module of its own because every layer raises these and none of them may import a layer
above it. Callers import them from :mod:`reconciler.esl`::

    EslError                    base of everything raised here
    ├── EslConnectionError      not connected, socket failed, EOF or disconnect notice
    ├── EslAuthError            password refused, or the ACL sent a rude rejection
    ├── EslTimeout              a connect, reply or background job took too long
    ├── EslProtocolError        the peer sent bytes that are not ESL (the socket is dropped)
    └── EslCommandError         a command/reply said -ERR (event, bgapi); api() never raises it
"""

from __future__ import annotations


class EslError(Exception):
    """Base class of every error raised by the ESL client."""


class EslConnectionError(EslError):
    """The socket is not usable: never opened, failed, closed or disconnect-noticed."""


class EslAuthError(EslError):
    """The switch refused us: wrong password (``-ERR invalid``) or ACL rude rejection."""


class EslTimeout(EslError):
    """A connect, reply or background job did not complete within its timeout."""


class EslProtocolError(EslError):
    """The peer sent something that cannot be ESL; the connection is dropped."""


class EslCommandError(EslError):
    """A ``command/reply`` carried ``-ERR ...`` (for event subscriptions and bgapi)."""

    def __init__(self, message: str, reply_text: str) -> None:
        super().__init__(message)
        self.reply_text = reply_text


def copy_error(reason: EslError) -> EslError:
    """A fresh instance of ``reason`` for one waiter.

    One shutdown fails many waiters; each gets its own object so that raising it in one task
    does not pile that task's traceback onto the instance every other task raises.
    """
    copy = type(reason)(str(reason)) if not isinstance(reason, EslCommandError) else reason
    copy.__cause__ = reason.__cause__
    return copy


def as_connection_error(reason: EslError) -> EslConnectionError:
    """Waiters on a dropped socket see a connection error whatever broke it (``__cause__``)."""
    err = EslConnectionError(f"ESL connection dropped: {reason}")
    err.__cause__ = reason
    return err
