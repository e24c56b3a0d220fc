"""The completion records, built on the store's records (those are tested in tests/bot/stores)."""

from __future__ import annotations

from dataclasses import replace

from bot.core.records import (
    SECONDS_PER_DAY,
    ClaimStatus,
    CompletionRecord,
    CompletionRecords,
)
from bot.generation.params import GenerationParams
from bot.settings import SettingsRegistry
from bot.stores import MemoryStore

NOW = 1_000_000.0


def a_record() -> CompletionRecord:
    params = GenerationParams(max_length=30, temperature=0.5, top_k=3, top_p=0.9)
    return CompletionRecord("To be", ", or not", "tiny", params, author_id=7, channel_id=8)


async def test_completion_records_round_trip_and_claims() -> None:
    clock = [NOW]
    records = CompletionRecords(MemoryStore(SettingsRegistry()), 7, lambda: clock[0])
    record_id, version = await records.add(a_record())
    assert await records.get(record_id) == (a_record(), 0)

    claim = await records.claim(record_id, version)
    assert claim.status is ClaimStatus.CLAIMED and claim.record == a_record()
    assert (await records.claim(record_id, version)).status is ClaimStatus.BUSY  # in process
    records._working.clear()  # as another process sharing the store would see it
    assert (await records.claim(record_id, version)).status is ClaimStatus.BUSY  # in the store
    assert (await records.claim(record_id, claim.version)).status is ClaimStatus.BUSY

    new_version = await records.release(claim, replace(a_record(), text=" again"))
    assert new_version == version + 2
    stale = await records.claim(record_id, version)  # buttons from before the release
    assert stale.status is ClaimStatus.STALE and stale.version == new_version
    stored = await records.get(record_id)
    assert stored is not None and stored[0].text == " again" and not stored[0].busy

    clock[0] += 7 * SECONDS_PER_DAY  # the lifetime runs from the last release
    assert (await records.claim(record_id, new_version)).status is ClaimStatus.GONE
    assert await records.purge() == 1


def test_the_context_is_prompt_and_text_cut_from_the_start() -> None:
    record = a_record()
    assert record.context(100) == "To be, or not"
    assert record.context(6) == "or not"
    assert CompletionRecord.decode(record.encode()) == record
    assert CompletionRecord.decode('{"format": 99}') is None
