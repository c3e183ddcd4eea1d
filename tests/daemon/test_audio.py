"""The daemon's audio upkeep: retention deletes only what is older than the tenant's (or
the platform's) retention, only inside that tenant's directory, counted; sounds follow git;
a pruned tenant's audio is archived, not deleted."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest

from reconciler.core.audio_roots import AudioRoots
from reconciler.core.retention import RetentionPolicy, expired, policy
from reconciler.daemon.audio import AudioUpkeep, archive_tenant_audio
from reconciler.daemon.metrics import Metrics
from specs_schema.models import Retention
from tests.specs_schema.test_tenant_sounds import make_wav

NOW = 2_000_000_000.0
DAY = 86400.0


def test_the_tenant_wins_over_the_platform_and_unset_is_forever() -> None:
    platform = Retention(recordings="30d", voicemail="10d")
    assert policy(Retention(recordings="90d"), platform) == RetentionPolicy(90, 10)
    assert policy(Retention(), None) == RetentionPolicy(None, None)
    assert expired([("a", NOW - 2 * DAY), ("b", NOW)], DAY, NOW) == ["a"]
    assert expired([("a", 0.0)], None, NOW) == []


def _file(path: Path, age_days: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"audio")
    stamp = NOW - age_days * DAY
    os.utime(path, (stamp, stamp), follow_symlinks=False)
    return path


def _specs(**retention: Retention) -> SimpleNamespace:
    tenants = {t: SimpleNamespace(spec=SimpleNamespace(retention=r)) for t, r in retention.items()}
    return SimpleNamespace(
        tenants=tenants, platform=SimpleNamespace(retention=Retention(recordings="30d"))
    )


@pytest.fixture
def roots(tmp_path: Path) -> AudioRoots:
    return AudioRoots(
        recordings=str(tmp_path / "rec"),
        sounds=str(tmp_path / "snd"),
        voicemail=str(tmp_path / "vm"),
    )


def test_retention_prunes_old_recordings_of_each_tenant_only(
    roots: AudioRoots, tmp_path: Path
) -> None:
    rec = Path(roots.recordings)
    old_acme = _file(rec / "acme" / "support" / "old.wav", 100)
    young_acme = _file(rec / "acme" / "support" / "young.wav", 10)
    globex_40 = _file(rec / "globex" / "x.wav", 40)  # platform default 30d
    globex_20 = _file(rec / "globex" / "y.wav", 20)
    outside = _file(tmp_path / "outside.wav", 400)
    os.symlink(outside, rec / "acme" / "link.wav")  # never deleted through
    metrics = Metrics()
    upkeep = AudioUpkeep(tmp_path / "tenants.d", roots, metrics, clock=lambda: NOW)
    reconciler = SimpleNamespace(
        last_specs=_specs(acme=Retention(recordings="90d"), globex=Retention()),
        applied=SimpleNamespace(state={"acme": None, "globex": None}),
    )
    upkeep.prune(None, reconciler)  # type: ignore[arg-type]
    assert not old_acme.exists() and not globex_40.exists()
    assert young_acme.exists() and globex_20.exists() and outside.exists()
    assert upkeep.pruned == {"acme": {"recordings": 1}, "globex": {"recordings": 1}}
    assert b'pbx_audio_pruned_total{kind="recordings"} 2.0' in generate_latest(metrics.registry)
    _file(rec / "acme" / "again.wav", 100)
    upkeep.prune(None, reconciler)  # type: ignore[arg-type]
    assert (rec / "acme" / "again.wav").exists()  # at most once per prune_every


async def test_sounds_follow_git_after_a_pass(roots: AudioRoots, tmp_path: Path) -> None:
    git = tmp_path / "tenants.d"
    make_wav(git / "acme" / "sounds" / "hold.wav")
    make_wav(git / "frozen" / "sounds" / "hold.wav")
    upkeep = AudioUpkeep(git, roots, Metrics())
    reconciler = SimpleNamespace(
        applied=SimpleNamespace(
            state={
                t: SimpleNamespace(tenant=SimpleNamespace(domain=f"{t}.example.com"))
                for t in ("acme", "frozen")
            },
            spec_status={"frozen": 1},
        )
    )
    upkeep.after_pass(reconciler)  # type: ignore[arg-type]
    await upkeep.wait_synced()
    assert (Path(roots.sounds) / "acme" / "hold.wav").is_file()
    assert not (Path(roots.sounds) / "frozen").exists()  # an invalid tenant keeps what it had
    assert upkeep.status()["sounds"]["acme"]["copied"] == ["hold.wav"]


def test_a_pruned_tenants_audio_is_archived_beside_its_schema(roots: AudioRoots) -> None:
    _file(Path(roots.recordings) / "acme" / "a.wav", 1)
    _file(Path(roots.sounds) / "acme" / "b.wav", 1)
    moved = archive_tenant_audio(roots, "acme", "archive_acme_20261207t120000z")
    assert moved == [
        f"{roots.recordings}/archive_acme_20261207t120000z",
        f"{roots.sounds}/archive_acme_20261207t120000z",
    ]
    assert (Path(roots.recordings) / "archive_acme_20261207t120000z" / "a.wav").is_file()
    assert not (Path(roots.recordings) / "acme").exists()


async def test_who_answered_is_noted_beside_the_recordings(
    roots: AudioRoots, tmp_path: Path
) -> None:
    upkeep = AudioUpkeep(tmp_path / "tenants.d", roots, Metrics())
    tenant = SimpleNamespace(domain="acme.example.com")
    reconciler = SimpleNamespace(
        applied=SimpleNamespace(state={"acme": SimpleNamespace(tenant=tenant)}, spec_status={})
    )
    upkeep.after_pass(reconciler)  # type: ignore[arg-type]
    await upkeep.wait_synced()
    uuid = "8ca39c13-7979-48bd-9600-bccbfda48018"
    event = {
        "CC-Action": "bridge-agent-start",
        "CC-Agent": "rita@acme.example.com",
        "CC-Queue": "recorded@acme.example.com",
        "CC-Member-Session-UUID": uuid,
    }
    upkeep.answered(event)
    for hostile in ({**event, "CC-Member-Session-UUID": "../../x"},
                    {**event, "CC-Agent": "eve@globex.example.com"}):  # fmt: skip
        upkeep.answered(hostile)
    note = Path(roots.recordings) / "acme" / ".answered" / f"{uuid}.rita"
    for _ in range(200):
        if note.is_file():
            break
        await asyncio.sleep(0.01)
    assert note.read_text() == '{"agent": "rita", "queue": "recorded"}'
    assert sorted(p.name for p in note.parent.iterdir()) == [f"{uuid}.rita"]
    assert not (Path(roots.recordings) / "globex").exists()


def test_status_says_what_is_wrong_with_a_root(
    roots: AudioRoots, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.daemon import audio

    Path(roots.recordings).mkdir()
    Path(roots.sounds).mkdir()
    upkeep = AudioUpkeep(tmp_path / "tenants.d", roots, Metrics())
    storage = upkeep.status()["storage"]
    assert storage["recordings"] is None and storage["voicemail"].startswith("missing")
    monkeypatch.setattr(audio, "LOW_SPACE", 1 << 62)
    assert upkeep.status()["storage"]["sounds"].startswith("nearly full")
