"""`python -m bot store copy --from URL --to URL`: every channel's settings from one store to
another (SQLite to PostgreSQL and back), as raw rows, so no plugin needs to be loaded.

Copying is idempotent: a row the target already holds with the same value is not written again,
and running the copy twice changes nothing the second time. Rows only in the target are kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from bot.settings import SettingsRegistry, SettingsStoreError
from bot.stores import SQLITE_PREFIX, SettingsStore, open_store, sqlite_path
from bot.stores.urls import mask_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CopyReport:
    source: str  # masked URLs
    target: str
    settings: int  # rows in the source
    channels: int
    written: int  # new or changed in the target
    unchanged: int  # already there with the same value

    def __str__(self) -> str:
        return (
            f"Copied {self.settings} settings of {self.channels} channels from {self.source} "
            f"to {self.target}: {self.written} written, {self.unchanged} already there."
        )


async def copy_settings(source_url: str, target_url: str) -> CopyReport:
    if source_url == target_url:
        raise SettingsStoreError(f"--from and --to name the same store, {mask_url(source_url)}.")
    if source_url.startswith(SQLITE_PREFIX) and not Path(sqlite_path(source_url)).exists():
        # Opening would create an empty file: a mistyped path would copy nothing, silently.
        raise SettingsStoreError(f"The store to copy from, {source_url}, does not exist.")
    registry = SettingsRegistry()  # raw rows: no key needs to be registered
    source = await open_store(source_url, registry)
    try:
        target = await open_store(target_url, registry)
        try:
            return await _copy(source, target, mask_url(source_url), mask_url(target_url))
        finally:
            await target.close()
    finally:
        await source.close()


async def _copy(
    source: SettingsStore, target: SettingsStore, source_shown: str, target_shown: str
) -> CopyReport:
    rows = await source.rows()
    present = set(await target.rows())
    missing = [row for row in rows if row not in present]
    await target.put_rows(missing)
    report = CopyReport(
        source=source_shown,
        target=target_shown,
        settings=len(rows),
        channels=len({channel for channel, _, _ in rows}),
        written=len(missing),
        unchanged=len(rows) - len(missing),
    )
    log.info("%s", report)
    return report
