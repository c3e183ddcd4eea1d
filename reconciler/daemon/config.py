"""What ``pbx run`` is told: one frozen value built by the CLI (flags > env > file > defaults)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from reconciler.core.audio_roots import DEFAULT_ROOTS, AudioRoots

if TYPE_CHECKING:  # annotations only: `pbx run` reads its settings before importing these
    from reconciler.switch import NodeSpec
    from reconciler.web import PortalConfig


def default_state_dir() -> Path:
    """Persisted snapshot, git work tree and the embedded database live here by default."""
    return Path(platformdirs.user_data_dir("pbx-reconciler"))


MAX_XML_CURL_WORKERS = 256


def default_xml_curl_workers() -> int:
    """``pbx run``'s default: one xml_curl worker per core this process may run on, so the
    lookups FreeSWITCH waits on never queue behind a pass (measured: README, Benchmarks)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_XML_CURL_WORKERS))


# /status and /metrics of the control plane when xml_curl workers own --listen. Not the
# "next port" of --listen: 8081 (next to the default 8080) is FreeSWITCH's mod_verto; no
# FreeSWITCH default binds 8181.
DEFAULT_STATUS_LISTEN = ("127.0.0.1", 8181)


@dataclass(frozen=True)
class DaemonConfig:
    tenants_dir: Path
    database_url: str | None = None
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    xml_curl_auth: tuple[str, str] | None = None
    status_auth: tuple[str, str] | None = None
    nodes: tuple[NodeSpec, ...] = ()
    interval: float = 60.0
    templates_dir: Path | None = None
    state_dir: Path = field(default_factory=default_state_dir)
    git_url: str | None = None
    git_branch: str = "main"
    git_poll: float = 30.0
    debounce_ms: int = 200
    leader_poll: float = 1.0
    install_signal_handlers: bool = True
    embedded_data_dir: Path | None = None
    max_orphan_share: float = 0.5
    stable_window: float = 2.0  # a large shrink waits for its file to be unchanged this long
    credentials_grace: float = 7 * 86400.0  # a deleted extension's password is kept this long
    portal: PortalConfig | None = None  # None: no portal listener
    retry_base: float = 0.5
    retry_cap: float = 60.0
    # 0: xml_curl answered in this process. ``pbx run`` defaults to one worker per core
    # (``default_xml_curl_workers``); a config built in code (tests) serves in process.
    xml_curl_workers: int = 0
    xml_curl_hang_seconds: float = 10.0  # a worker silent this long is killed and replaced
    status_listen: tuple[str, int] | None = None  # with workers: /status and /metrics here
    cdr_spool_dirs: tuple[Path, ...] = ()  # nodes' mod_xml_cdr err-log-dirs on this host
    cdr_collect_interval: float = 5.0
    retention_interval: float = 3600.0  # call history retention rounds (leader only)
    audio_roots: AudioRoots = DEFAULT_ROOTS  # where switches keep each tenant's audio

    @property
    def generation_path(self) -> Path:
        """The persisted snapshot generation (``serve.generation``): what a restart serves
        at once and the xml_curl workers map."""
        return self.state_dir / "xmlcurl.generation"

    @property
    def worker_pid_file(self) -> Path:
        """The xml_curl workers' pids: the next daemon retires those a killed one left."""
        return self.state_dir / "xmlcurl-workers.pid"

    @property
    def status_address(self) -> tuple[str, int]:
        """Where the control plane serves /status and /metrics when workers own --listen:
        ``--status-listen``, else ``DEFAULT_STATUS_LISTEN``."""
        return self.status_listen or DEFAULT_STATUS_LISTEN

    @property
    def specs_dir(self) -> Path:
        """Where passes read specs: the git work tree's copy when a git source is set."""
        if self.git_url:
            tenants = self.tenants_dir
            relative = tenants if not tenants.is_absolute() else Path(tenants.name)
            return self.state_dir / "git" / relative
        return self.tenants_dir

    @property
    def cdr_quarantine_dir(self) -> Path:
        """Call records whose domain is no applied tenant's (kept, counted, never filed)."""
        return self.state_dir / "cdr-quarantine"
