"""Deliberate defects, for tests that must show a check catches a real fault (test-only).

    python -m bot.testing.defects DEFECT[,DEFECT...] -- [python -m bot arguments]

runs `python -m bot` with the named defects patched into this process, and nowhere else: the
soak run (`bench/soak.py --defect ...`) starts its bot processes this way to prove that its
invariants fail when the bot is wrong. Nothing outside tests imports this module.

- `skip-claim`: a Continue or Regenerate press skips the claim on its record, so both presses of
  a double click are answered (the double answer the claim exists to prevent).
- `memory-setting`: a channel setting written here is kept in this process's memory only: this
  process answers and reads it back, the database never sees it (a per-process cache that lies).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from bot.core.records import Claim, ClaimStatus, CompletionRecords
from bot.settings import encode_value
from bot.stores.base import Store


def skip_claim() -> None:
    async def claim(self: CompletionRecords, record_id: str, version: int) -> Claim:
        found = await self.get(record_id)
        if found is None:
            return Claim(ClaimStatus.GONE, record_id)
        return Claim(ClaimStatus.CLAIMED, record_id, found[0], found[1])

    CompletionRecords.claim = claim  # type: ignore[method-assign]


def memory_setting() -> None:
    memory: dict[tuple[int, str], Any] = {}
    original_get, original_get_all = Store.get, Store.get_all

    async def set_(self: Store, channel_id: int, key: str, value: Any) -> Any:
        memory[(channel_id, key)] = json.loads(
            encode_value(key, self.registry.validate(key, value))
        )
        return memory[(channel_id, key)]

    async def get(self: Store, channel_id: int, key: str) -> Any:
        if (channel_id, key) in memory:
            return memory[(channel_id, key)]
        return await original_get(self, channel_id, key)

    async def get_all(self: Store, channel_id: int) -> dict[str, Any]:
        values = await original_get_all(self, channel_id)
        values.update({k: v for (c, k), v in memory.items() if c == channel_id})
        return values

    Store.set = set_  # type: ignore[method-assign]
    Store.get = get  # type: ignore[method-assign]
    Store.get_all = get_all  # type: ignore[method-assign]


DEFECTS: dict[str, Callable[[], None]] = {
    "skip-claim": skip_claim,
    "memory-setting": memory_setting,
}


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2 or argv[1] != "--":
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    names = [name for name in argv[0].split(",") if name]
    unknown = [name for name in names if name not in DEFECTS]
    if unknown:
        print(f"error: unknown defect(s) {unknown}; known: {', '.join(DEFECTS)}", file=sys.stderr)
        return 2
    for name in names:
        DEFECTS[name]()
    from bot.cli import main as bot_main

    return bot_main(list(argv[2:]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
