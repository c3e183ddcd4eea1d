"""A tenant's own sounds in git (``tenants.d/<id>/sounds/``): which files are valid, and
how a bad one is reported where it is referenced, freezing only its tenant."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import pytest

from specs_schema import sounds
from specs_schema.load import load_specs
from specs_schema.sounds import folder_problems, wav_problem


def make_wav(
    path: Path, *, rate: int = 8000, channels: int = 1, width: int = 2, frames: int = 800
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(b"\x01\x00" * channels * frames if width == 2 else b"\x01" * frames)
    return path


def test_mono_16_bit_pcm_at_each_allowed_rate_is_valid(tmp_path: Path) -> None:
    for rate in (8000, 16000, 48000):
        assert wav_problem(make_wav(tmp_path / f"{rate}.wav", rate=rate)) is None


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("stereo", "2 channels"),
        ("rate", "22050 Hz"),
        ("8bit", "8-bit"),
        ("empty", "no audio"),
        ("mp3", "not a WAV file"),
        ("truncated", "not a WAV file"),
        ("link", "symbolic link"),
        ("big", "more than"),
        ("float", "not a WAV file"),
    ],
)
def test_invalid_sounds_say_why(tmp_path: Path, kind: str, reason: str) -> None:
    path = tmp_path / "x.wav"
    if kind == "stereo":
        make_wav(path, channels=2)
    elif kind == "rate":
        make_wav(path, rate=22050)
    elif kind == "8bit":
        make_wav(path, width=1)
    elif kind == "empty":
        make_wav(path, frames=0)
    elif kind == "mp3":
        path.write_bytes(b"ID3\x03\x00" + b"\x00" * 100)
    elif kind == "truncated":
        path.write_bytes(make_wav(tmp_path / "ok.wav").read_bytes()[:30])
    elif kind == "link":
        os.symlink(make_wav(tmp_path / "ok.wav"), path)
    elif kind == "big":
        with path.open("wb") as handle:
            handle.truncate(sounds.MAX_SOUND_BYTES + 1)
    elif kind == "float":
        data = bytearray(make_wav(tmp_path / "ok.wav").read_bytes())
        data[20:22] = (3).to_bytes(2, "little")  # WAVE_FORMAT_IEEE_FLOAT
        path.write_bytes(bytes(data))
    problem = wav_problem(path)
    assert problem is not None and reason in problem


def test_badly_named_files_are_reported(tmp_path: Path) -> None:
    make_wav(tmp_path / "Hello World.wav")
    make_wav(tmp_path / "ok" / "fine.wav")
    os.symlink("/etc", tmp_path / "etc")
    problems = folder_problems(tmp_path)
    assert set(problems) == {"Hello World.wav", "etc"}


SPEC = """\
id: acme
domain: acme.example.com
name: Acme
queues:
  - name: support
    number: "7000"
    moh_sound: tenant:moh/loop.wav
    announce_sound: tenant:greetings/hold.wav
"""


def _errors(tmp_path: Path) -> list[str]:
    result = load_specs([tmp_path])
    return [str(e).removeprefix(f"{tmp_path}/") for e in result.errors]


def test_valid_sounds_beside_the_spec_load(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").write_text(SPEC)
    make_wav(tmp_path / "acme" / "sounds" / "moh" / "loop.wav", rate=16000)
    make_wav(tmp_path / "acme" / "sounds" / "greetings" / "hold.wav")
    result = load_specs([tmp_path])
    assert result.ok and set(result.tenants) == {"acme"}


def test_a_missing_or_invalid_sound_freezes_only_its_tenant_at_the_reference(
    tmp_path: Path,
) -> None:
    (tmp_path / "acme.yaml").write_text(SPEC)
    (tmp_path / "globex.yaml").write_text("id: globex\ndomain: globex.example.com\nname: G\n")
    make_wav(tmp_path / "acme" / "sounds" / "moh" / "loop.wav", channels=2)
    make_wav(tmp_path / "acme" / "sounds" / "stray.wav", rate=11025)
    result = load_specs([tmp_path])
    assert set(result.tenants) == {"globex"}
    assert set(result.invalid) == {"acme"}
    assert _errors(tmp_path) == [
        "acme.yaml:1:5: id: acme/sounds/stray.wav is sampled at 11025 Hz; allowed: 8000, "
        "16000, 48000",
        "acme.yaml:7:16: queues[0].moh_sound: acme/sounds/moh/loop.wav has 2 channels; sounds "
        "must be mono",
        "acme.yaml:8:21: queues[0].announce_sound: acme/sounds/greetings/hold.wav does not "
        "exist in git",
    ]


def test_a_tenant_sound_must_be_a_wav(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").write_text(SPEC.replace("greetings/hold.wav", "hold.mp3"))
    make_wav(tmp_path / "acme" / "sounds" / "moh" / "loop.wav")
    assert _errors(tmp_path) == [
        "acme.yaml:8:21: queues[0].announce_sound: tenant sounds are WAV files: "
        "acme/sounds/hold.mp3 cannot be one"
    ]


def test_a_display_name_starting_with_tenant_is_not_a_reference(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").write_text(
        "id: acme\ndomain: acme.example.com\nname: 'tenant:nothing.wav'\n"
    )
    assert load_specs([tmp_path]).ok


def test_one_loader_sees_sounds_change_beside_an_unchanged_spec(tmp_path: Path) -> None:
    """The daemon's loader keeps each file's directory findings while their inputs hold:
    a sound added, broken or removed without the spec file changing is still seen."""
    from specs_schema.load import SpecLoader

    (tmp_path / "acme.yaml").write_text(SPEC)
    loader = SpecLoader(salt="code")
    missing = loader.load([tmp_path])
    assert "acme" in missing.invalid
    make_wav(tmp_path / "acme" / "sounds" / "moh" / "loop.wav")
    hold = make_wav(tmp_path / "acme" / "sounds" / "greetings" / "hold.wav")
    fixed = loader.load([tmp_path])
    assert fixed.ok and fixed.tenants["acme"].inputs
    assert loader.load([tmp_path]).tenants["acme"].inputs == fixed.tenants["acme"].inputs
    make_wav(hold, channels=2)
    broken = loader.load([tmp_path])
    assert "acme" in broken.invalid
    assert any("hold.wav has 2 channels" in str(e) for e in broken.errors)
    hold.unlink()
    assert any("does not exist in git" in str(e) for e in loader.load([tmp_path]).errors)
