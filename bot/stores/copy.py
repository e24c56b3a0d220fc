"""`python -m bot store copy --from URL --to URL`: everything a store keeps (channel settings,
scoped state of every scope, records, meta) from one store to another, SQLite to PostgreSQL and
back, as raw rows, so no plugin needs to be loaded. Records keep their versions, so the buttons
of messages sent before the copy work against the new store.

Copying is idempotent: a row the target already holds with the same content is not written
again, and running the copy twice changes nothing the second time. Rows only in the target are
kept; a row in both with other content takes the source's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TypeVar

from bot.settings import SettingsRegistry, SettingsStoreError
from bot.stores import Store, StoreContents, open_store
from bot.stores.urls import mask_url, resolve_url

log = logging.getLogger(__name__)

Row = TypeVar("Row")

#: How the report names each field of `StoreContents`.
KIND_NAMES = {"settings": "settings", "state": "scoped state", "records": "records", "meta": "meta"}


@dataclass(frozen=True)
class KindCopied:
    kind: str  # as shown: "settings", "scoped state", ...
    rows: int  # in the source
    written: int  # new or changed in the target

    def __str__(self) -> str:
        return (
            f"{self.kind}: {self.rows} ({self.written} written, "
            f"{self.rows - self.written} already there)"
        )


@dataclass(frozen=True)
class CopyReport:
    source: str  # masked URLs
    target: str
    kinds: tuple[KindCopied, ...]

    def written(self, kind: str) -> int:
        return next(k.written for k in self.kinds if k.kind == kind)

    def __str__(self) -> str:
        lines = [f"Copied {self.source} to {self.target}:"]
        lines += [f"  {kind}" for kind in self.kinds]
        return "\n".join(lines)


async def copy_store(
    source_url: str, target_url: str, env: Mapping[str, str] | None = None
) -> CopyReport:
    """Copy every row of `source_url`'s store into `target_url`'s; relative SQLite paths are in
    `CHARBOT_DATA_DIR` (from `env`, default the process's environment)."""
    source = resolve_url(source_url, env, name="The store to copy from")
    target = resolve_url(target_url, env, name="The store to copy to")
    if source.url == target.url:
        raise SettingsStoreError(f"--from and --to name the same store, {mask_url(source.url)}.")
    if source.path is not None and not source.path.exists():
        # Opening would create an empty file: a mistyped path would copy nothing, silently.
        raise SettingsStoreError(f"The store to copy from, {source.url}, does not exist.")
    registry = SettingsRegistry()  # raw rows: no key needs to be registered
    reader = await open_store(source.url, registry, name="The store to copy from")
    try:
        writer = await open_store(target.url, registry, name="The store to copy to")
        try:
            return await _copy(reader, writer, mask_url(source.url), mask_url(target.url))
        finally:
            await writer.close()
    finally:
        await reader.close()


async def _copy(source: Store, target: Store, source_shown: str, target_shown: str) -> CopyReport:
    have, present = await source.dump(), await target.dump()
    missing = StoreContents(
        settings=_missing(have.settings, present.settings),
        state=_missing(have.state, present.state),
        records=_missing(have.records, present.records),
        meta=_missing(have.meta, present.meta),
    )
    await target.load(missing)
    kinds = tuple(
        KindCopied(KIND_NAMES[f.name], len(getattr(have, f.name)), len(getattr(missing, f.name)))
        for f in fields(StoreContents)
    )
    report = CopyReport(source_shown, target_shown, kinds)
    log.info("%s", report)
    return report


def _missing(rows: tuple[Row, ...], present: tuple[Row, ...]) -> tuple[Row, ...]:
    there = set(present)
    return tuple(row for row in rows if row not in there)
