"""What a completion's buttons need after it was sent, kept in the settings store's records.

A message's Continue and Regenerate buttons name a record (`charbot:continue:<id>:<version>`):
the prompt, the whole generated text (a message shows at most 2,000 characters), the model and
params, who asked and where. Records expire (`discord.buttons_expire_days`, 7 by default), so
they survive a restart of the bot but do not pile up.

A press *claims* its record before any work, so a double press, or two bot processes sharing
the store, give one answer: an in-process set of records being worked on, then the store's
compare-and-set on the record's version. The version is in the buttons' custom ids too, so a
press on buttons older than the record's latest state (the second click of a double click,
arriving after the first was answered) is refused as stale. A continued text keeps its record
(marked with the reply's link) until it expires, so a late press learns where the story went.
"""

from __future__ import annotations

import enum
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from bot.generation.params import GenerationParams
from bot.stores.base import Store

log = logging.getLogger(__name__)

#: The kind of the store's records this module keeps.
RECORD_KIND = "completion"
#: Records written by this code; an unknown format reads as gone, never as a crash.
FORMAT = 1
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class CompletionRecord:
    """One sent completion. `text` is all that was generated; the message may show less."""

    prompt: str
    text: str
    model: str
    params: GenerationParams
    author_id: int  # who asked: they (or Manage Messages) may regenerate
    channel_id: int
    #: Shown above the text (e.g. whose message the context menu continued); "" for none.
    header: str = ""
    #: Whether the message shows the prompt in bold before the text (a continuation does not).
    shows_prompt: bool = True
    busy: bool = False  # claimed by a press being answered
    #: The link to the reply that continued this text, once one did: the story goes on there.
    continued: str = ""
    #: Whether generation stopped with an error before the text was whole: `text` is what came.
    interrupted: bool = False

    def context(self, max_prompt: int) -> str:
        """The prompt to continue this text with: prompt and text, cut to the prompt limit
        from the start (the end is what the model continues)."""
        return (self.prompt + self.text)[-max_prompt:] if max_prompt > 0 else ""

    def encode(self) -> str:
        data = asdict(self)
        # Every param but the seed: a regenerated text draws a new one.
        params = {f.name: getattr(self.params, f.name) for f in fields(self.params)}
        params.pop("seed")
        params["stop"] = list(self.params.stop)
        data["params"] = params
        return json.dumps({"format": FORMAT, **data}, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> CompletionRecord | None:
        """The record, or None (logged) when the stored JSON is not one this code wrote."""
        try:
            data: dict[str, Any] = json.loads(text)
            if data.pop("format", None) != FORMAT:
                raise ValueError("unknown format")
            params = data["params"]
            data["params"] = GenerationParams(**{**params, "stop": tuple(params["stop"])})
            return cls(**data)
        except (TypeError, ValueError, KeyError) as exc:
            log.warning("a completion record cannot be read (%s); treating it as gone", exc)
            return None


class ClaimStatus(enum.Enum):
    CLAIMED = "claimed"
    GONE = "gone"  # expired, deleted, or never was
    BUSY = "busy"  # another press is being answered
    STALE = "stale"  # the buttons pressed are older than the record (already answered)
    CONTINUED = "continued"  # another press continued the text: the story goes on in a reply


@dataclass(frozen=True)
class Claim:
    status: ClaimStatus
    record_id: str
    record: CompletionRecord | None = None
    version: int = 0  # the record's version while claimed


class CompletionRecords:
    """The records of sent completions, in the settings store, with their expiry."""

    def __init__(
        self,
        store: Store,
        lifetime_days: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.lifetime = lifetime_days * SECONDS_PER_DAY
        self.clock = clock  # unix seconds; tests move it forward to see records expire
        self._working: set[str] = set()

    def _expiry(self) -> float:
        return self.clock() + self.lifetime

    async def add(self, record: CompletionRecord) -> tuple[str, int]:
        """Keep a new record; returns its id and version, for the buttons' custom ids."""
        record_id = secrets.token_hex(8)
        await self.store.put_record(RECORD_KIND, record_id, record.encode(), self._expiry())
        return record_id, 0

    async def get(self, record_id: str) -> tuple[CompletionRecord, int] | None:
        stored = await self.store.get_record(RECORD_KIND, record_id, now=self.clock())
        if stored is None:
            return None
        record = CompletionRecord.decode(stored.data)
        return None if record is None else (record, stored.version)

    async def claim(self, record_id: str, version: int) -> Claim:
        """Claim the record for one press on buttons of `version`. Anything but CLAIMED means
        someone else's press is (or was) answered; a CLAIMED press must `release` or `drop`."""
        if record_id in self._working:
            return Claim(ClaimStatus.BUSY, record_id)
        # Nothing awaits between the check above and this add: one press per record gets here.
        self._working.add(record_id)
        try:
            found = await self.get(record_id)
            if found is None:
                claim = Claim(ClaimStatus.GONE, record_id)
            elif found[0].continued:
                claim = Claim(ClaimStatus.CONTINUED, record_id, found[0], found[1])
            elif found[0].busy:
                claim = Claim(ClaimStatus.BUSY, record_id, found[0])
            elif found[1] != version:
                claim = Claim(ClaimStatus.STALE, record_id, found[0], found[1])
            else:
                record = found[0]
                busy = replace(record, busy=True).encode()
                # Another bot process may have claimed it since we read it: the store decides.
                won = await self.store.swap_record(
                    RECORD_KIND, record_id, busy, version=version, expires_at=self._expiry()
                )
                status = ClaimStatus.CLAIMED if won else ClaimStatus.BUSY
                claim = Claim(status, record_id, record, version + 1)
        except BaseException:
            self._working.discard(record_id)
            raise
        if claim.status is not ClaimStatus.CLAIMED:
            self._working.discard(record_id)
        return claim

    async def release(self, claim: Claim, record: CompletionRecord | None = None) -> int | None:
        """End a claim, keeping `record` (or the claimed one, unchanged); the new version for
        the message's buttons, or None when the record vanished meanwhile."""
        assert claim.status is ClaimStatus.CLAIMED and claim.record is not None
        kept = replace(record or claim.record, busy=False)
        try:
            won = await self.store.swap_record(
                RECORD_KIND,
                claim.record_id,
                kept.encode(),
                version=claim.version,
                expires_at=self._expiry(),
            )
        finally:
            self._working.discard(claim.record_id)
        return claim.version + 1 if won else None

    async def drop(self, record_id: str) -> None:
        """Forget a record (its message's buttons are gone); ends a claim on it too."""
        try:
            await self.store.delete_record(RECORD_KIND, record_id)
        finally:
            self._working.discard(record_id)

    async def purge(self) -> int:
        """Remove the expired records; how many went."""
        removed = await self.store.purge_expired(self.clock())
        if removed:
            log.info("removed %d expired completion records", removed)
        return removed
