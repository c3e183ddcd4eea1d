"""An optional git source: fetch a branch into a local work tree the daemon reads specs from.

Always the newest commit of the branch is checked out, so a commit with a broken spec never
blocks a newer one: its tenants stay frozen until the next commit fixes them.

Credentials in the URL (``https://user:token@host/repo``) never reach an argument list
(``ps`` shows those to every local user), the work tree's ``.git/config``, or a log line:
git is given the URL without them, and asks for them through a credential helper that reads
them from its environment.

Every git command runs in its own process group, and ``stop`` ends the running one (SIGTERM
to the group, SIGKILL after a grace period): a ``git fetch`` hanging on a dead network never
holds up the daemon's shutdown (systemd would wait, then SIGKILL everything).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from reconciler.core.errors import Transient
from reconciler.core.logs import event, register_secret

log = logging.getLogger(__name__)

_USER_ENV = "PBX_GIT_USERNAME"
_PASSWORD_ENV = "PBX_GIT_PASSWORD"  # noqa: S105 - the name of a variable, not a password
# A helper with no secret in it: git runs it and it prints what the environment holds.
_HELPER = (
    f'!f() {{ test "$1" = get || exit 0; printf "username=%s\\npassword=%s\\n" '
    f'"${_USER_ENV}" "${_PASSWORD_ENV}"; }}; f'
)


class GitSourceError(Transient):
    """git failed; the message carries git's stderr (credentials masked)."""


class GitSourceStopped(GitSourceError):
    """``stop`` was called: the running git command was ended, no other one starts."""


@dataclass(frozen=True)
class GitRemote:
    """A remote URL split into what may be shown and what may not."""

    url: str  # without credentials
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> GitRemote:
        parts = urlsplit(url)
        if not parts.scheme or "@" not in parts.netloc or parts.scheme in ("ssh", "git"):
            return cls(url)  # scp-like or ssh: keys, not passwords
        userinfo, _, host = parts.netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        return cls(
            urlunsplit(parts._replace(netloc=host)),
            unquote(user) or None,
            unquote(password) or None,
        )

    def masked(self) -> str:
        """The URL as logs may show it."""
        if self.username or self.password:
            parts = urlsplit(self.url)
            return urlunsplit(parts._replace(netloc=f"(sensitive)@{parts.netloc}"))
        return self.url


class GitSource:
    def __init__(
        self, url: str, branch: str, workdir: Path, *, timeout: float = 120.0, grace: float = 2.0
    ) -> None:
        self.remote = GitRemote.parse(url)
        for secret in (self.remote.password, self.remote.username):
            register_secret(secret)
        self.branch = branch
        self.workdir = workdir
        self.timeout = timeout
        self.grace = grace  # between SIGTERM and SIGKILL of a git being ended
        self.commit: str | None = None
        self._lock = threading.Lock()
        self._child: subprocess.Popen[str] | None = None
        self._stopped = False

    def stop(self) -> None:
        """End the running git command (its whole process group) and refuse new ones.
        Blocks at most ``grace`` seconds plus the kill; safe from any thread."""
        with self._lock:
            self._stopped = True
            child = self._child
        if child is not None:
            _end(child, self.grace)

    def _env(self) -> dict[str, str]:
        env = {"GIT_TERMINAL_PROMPT": "0", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        if self.remote.username or self.remote.password:
            env[_USER_ENV] = self.remote.username or ""
            env[_PASSWORD_ENV] = self.remote.password or ""
        return env

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        helper = ["-c", "credential.helper=", "-c", f"credential.helper={_HELPER}"]
        with self._lock:
            if self._stopped:
                raise GitSourceStopped(f"git {args[0]} not started: stopping")
            try:
                child = subprocess.Popen(
                    ["git", *helper, *args],
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=self._env(),
                    start_new_session=True,  # its own process group: ended as a whole
                )
            except OSError as exc:
                raise GitSourceError(f"git {args[0]} failed: {type(exc).__name__}") from None
            self._child = child
        try:
            stdout, stderr = child.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _end(child, self.grace)
            raise GitSourceError(f"git {args[0]} failed: TimeoutExpired") from None
        finally:
            with self._lock:
                self._child = None
        if self._stopped:
            raise GitSourceStopped(f"git {args[0]} ended: stopping")
        if child.returncode != 0:
            raise GitSourceError(f"git {args[0]} failed: {self._mask(stderr.strip())}")
        return stdout.strip()

    def _mask(self, text: str) -> str:
        for secret in (self.remote.password, self.remote.username):
            if secret:
                text = text.replace(secret, "(sensitive)")
        return text

    def sync(self) -> bool:
        """Fetch and check out the branch's newest commit; True when the commit changed."""
        if not (self.workdir / ".git").is_dir():
            self.workdir.parent.mkdir(parents=True, exist_ok=True)
            self._git(
                "clone",
                "--quiet",
                "--branch",
                self.branch,
                "--single-branch",
                self.remote.url,
                str(self.workdir),
            )
        else:
            # an older clone may hold credentials in its config: keep only the clean URL
            self._git("remote", "set-url", "origin", self.remote.url, cwd=self.workdir)
            self._git("fetch", "--quiet", self.remote.url, self.branch, cwd=self.workdir)
            self._git("reset", "--quiet", "--hard", "FETCH_HEAD", cwd=self.workdir)
            self._git("clean", "--quiet", "-fdx", cwd=self.workdir)
        commit = self._git("rev-parse", "HEAD", cwd=self.workdir)
        changed = commit != self.commit
        if changed:
            event(log, "git source updated", branch=self.branch, commit=commit)
        self.commit = commit
        return changed


def _end(child: subprocess.Popen[str], grace: float) -> None:
    """SIGTERM to the child's process group (git's helpers too: ``git-remote-https``), then
    SIGKILL to whatever of the group is left after ``grace`` seconds."""
    _signal_group(child, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(grace)
    _signal_group(child, signal.SIGKILL)
    child.wait()


def _signal_group(child: subprocess.Popen[str], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(child.pid, sig)
