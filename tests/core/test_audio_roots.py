"""The audio roots are settings: moved roots reach what FreeSWITCH is told, and only plain
absolute paths are accepted."""

from __future__ import annotations

import pytest

from reconciler.cli.settings import audio_roots, resolve
from reconciler.core.audio_roots import DEFAULT_ROOTS, AudioRoots, checked_root
from reconciler.core.errors import SettingsError
from reconciler.core.model import Queue
from reconciler.core.served import served_queue_params


def test_moved_roots_reach_the_queue_params() -> None:
    roots = AudioRoots(recordings="/srv/rec", sounds="/srv/snd", voicemail="/srv/vm")
    queue = Queue(
        name="support",
        number="7000",
        moh_sound="tenant:moh/loop.wav",
        record_template="{uuid}.wav",
    )  # type: ignore[call-arg]
    params = served_queue_params(queue, "acme", "acme.example.com", roots)
    assert params["moh-sound"] == "/srv/snd/acme/moh/loop.wav"
    assert params["record-template"] == "/srv/rec/acme/${uuid}.wav"
    default = served_queue_params(queue, "acme", "acme.example.com")
    assert default["moh-sound"] == f"{DEFAULT_ROOTS.sounds}/acme/moh/loop.wav"


@pytest.mark.parametrize(
    "value", ["relative/dir", "/a/../b", "/a/${x}", "/a b", "/a/{b}", "", "/a/./b", "/"]
)
def test_a_root_that_is_not_a_plain_absolute_path_is_refused(value: str) -> None:
    with pytest.raises(SettingsError):
        checked_root("recordings_dir", value)


def test_roots_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBX_RECORDINGS_DIR", "/data/rec/")
    roots = audio_roots(resolve({}, config={}))
    assert roots.recordings == "/data/rec"
    assert roots.sounds == DEFAULT_ROOTS.sounds
