"""The call-record journal on its own: what was appended is read back in order across
segments, from the checkpoint after a reopen; finished segments are deleted; a torn tail
is cut."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reconciler.daemon import cdr_journal
from reconciler.daemon.cdr_journal import Journal, JournalBusy, Position


@pytest.fixture(autouse=True)
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cdr_journal, "SEGMENT_BYTES", 100)


def segments(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.journal"))


async def append_all(journal: Journal, payloads: list[bytes]) -> None:
    for payload in payloads:
        await journal.append(payload)


def read_all(journal: Journal, start: Position) -> tuple[list[bytes], Position]:
    found: list[bytes] = []
    while True:
        payloads, end = journal.read(start, 3)
        found += payloads
        if end == start:
            return found, end
        start = end


async def test_payloads_come_back_in_order_across_segments(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    payloads = [f"record {n:03d} ".encode() * 4 for n in range(12)]
    await append_all(journal, payloads)
    assert len(segments(tmp_path)) > 3  # 100-byte segments
    found, end = read_all(journal, journal.filed)
    assert found == payloads and end == journal.synced
    await journal.close()


async def test_a_reopened_journal_reads_from_its_checkpoint(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    payloads = [f"r{n}".encode() * 30 for n in range(8)]
    await append_all(journal, payloads)
    first, at = journal.read(journal.filed, 5)
    journal.mark_filed(at)
    await journal.close()
    again = Journal(tmp_path)
    assert again.filed == at
    rest, _ = read_all(again, again.filed)
    assert first + rest == payloads
    assert min(int(p.stem) for p in segments(tmp_path)) == at.segment  # older gone
    await again.close()


async def test_concurrent_appends_share_syncs_and_all_land(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    payloads = [f"{n}".encode() for n in range(50)]
    await asyncio.gather(*(journal.append(p) for p in payloads))
    found, _ = read_all(journal, journal.filed)
    assert sorted(found) == sorted(payloads)
    await journal.close()


async def test_a_corrupt_tail_is_cut_at_open(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    await append_all(journal, [b"whole"])
    await journal.close()
    (segment,) = segments(tmp_path)
    whole = segment.stat().st_size
    with segment.open("ab") as handle:
        handle.write(cdr_journal.HEADER.pack(cdr_journal.MAGIC, 5, 0) + b"wrong")  # bad CRC
    again = Journal(tmp_path)
    assert segment.stat().st_size == whole
    assert read_all(again, again.filed)[0] == [b"whole"]
    await again.close()


async def test_one_journal_at_a_time_holds_the_folder(tmp_path: Path) -> None:
    """A second opener (another daemon on the state dir) is refused before it reads, cuts
    or writes anything; once the first is closed it opens."""
    first = Journal(tmp_path)
    await first.append(b"one")
    with pytest.raises(JournalBusy):
        Journal(tmp_path)
    await first.close()
    second = Journal(tmp_path)
    assert read_all(second, second.filed)[0] == [b"one"]
    await second.close()


async def test_many_payloads_take_one_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal(tmp_path)
    syncs: list[int] = []
    monkeypatch.setattr(cdr_journal.os, "fdatasync", syncs.append)
    await journal.append_many([b"a", b"b", b"c"])
    assert len(syncs) == 1 and read_all(journal, journal.filed)[0] == [b"a", b"b", b"c"]
    await journal.close()
