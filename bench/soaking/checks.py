"""What a soak run checks at its end: each unanswered request explained (or not), the settings it
wrote read back from a fresh process, the buttons still pressable, each fault recovered from."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.soaking import ledger
from bench.soaking.faults import DATABASE, RATE_LIMIT, REPLICA, Fault
from bench.soaking.ledger import Judge, Request
from bench.soaking.topology import REPO, SERVED_MODEL
from bot.testing import FakeDiscord, InvocationError, buttons_of

READ_BACK_TIMEOUT = 120.0
END_PRESS_TIMEOUT = 60.0
RECORD_KIND = "completion"  # bot/core/records.py's kind of record


def explain(requests: Sequence[Request], faults: Sequence[Fault], judge: Judge) -> None:
    """Give every unanswered request its reason; a request sent while no session held its shard
    must fall in a down window the run recorded, or it is unexplained too."""
    windows = [(s, w) for f in faults for s, w in f.down.items()]

    def in_window(request: Request) -> bool:
        return any(
            s == request.shard and start <= request.sent <= (end if end is not None else 1e18)
            for s, (start, end) in windows
        )

    # What the test server recorded (a refused late response, an answer given up on 429s) goes
    # before what is inferred from timing: a request stuck since a 429 storm is still unanswered
    # when a later kill marks its shard's requests in flight.
    for request in requests:
        if request.status != "unanswered":
            request.reason = ""
        elif judge.too_late(request):
            request.reason = ledger.TOO_LATE
        elif judge.gave_up(request):
            request.reason = ledger.GAVE_UP
        elif request.killed_by is not None:
            request.reason = ledger.KILLED
        elif in_window(request):
            request.reason = ledger.SHARD_DOWN
        else:
            request.reason = ledger.UNEXPLAINED


def on_path(fault: Fault, request: Request) -> bool:
    """Whether the request goes the way the fault broke."""
    if fault.kind == DATABASE:
        return request.kind in ledger.SETTING_KINDS
    if fault.kind == REPLICA:
        return request.model == SERVED_MODEL
    if fault.kind == RATE_LIMIT:
        return request.kind in (ledger.COMPLETE, ledger.COMPLETE_LONG)
    return request.shard in fault.shards


def recover(faults: Sequence[Fault], requests: Sequence[Request]) -> None:
    """Each fault's recovery: from the fault to the first answer, on its path, to a request
    sent after it."""
    for fault in faults:
        answers = [
            r.done_at
            for r in requests
            if r.status == "answered" and r.sent >= fault.at and r.done_at is not None
            and on_path(fault, r)
        ]  # fmt: skip
        fault.recovery = min(answers) - fault.at if answers else None


def read_back(url: str) -> dict[str, Any]:
    """Everything the store keeps, read by a process of its own (`soak.py --read-store`)."""
    command = [sys.executable, str(REPO / "bench" / "soak.py"), "--read-store", url]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=READ_BACK_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"reading the store back failed: {done.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(done.stdout)
    return data


@dataclass
class SettingsCheck:
    written: int = 0  # settings writes the bot confirmed
    checked: int = 0  # (channel, key) pairs the run wrote
    lost: list[str] = field(default_factory=list)


def same(a: object, b: object) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(float(a) - float(b)) < 1e-9
    return a == b


def check_settings(requests: Sequence[Request], stored: dict[str, Any]) -> SettingsCheck:
    """Every (channel, key) the run wrote must read back as its last confirmed value, or as a
    value written after it whose outcome left it open (refused, unanswered: it may have landed)."""
    values = {(int(c), str(k)): json.loads(v) for c, k, v in stored["settings"]}
    allowed: dict[tuple[int, str], list[object]] = {}
    confirmed: dict[tuple[int, str], bool] = {}
    result = SettingsCheck()
    for request in sorted(requests, key=lambda r: r.sent):
        if request.setting is None or request.undelivered:
            continue
        key = (request.channel_id, request.setting[0])
        if request.status == "answered":
            result.written += 1
            allowed[key], confirmed[key] = [request.setting[1]], True
        else:
            allowed.setdefault(key, []).append(request.setting[1])
    for key, options in allowed.items():
        result.checked += 1
        found = values.get(key)
        if found is None and not confirmed.get(key):
            continue  # never confirmed and never landed: nothing was promised
        if not any(same(found, option) for option in options):
            channel, name = key
            result.lost.append(f"channel {channel} {name}: reads {found!r}, wrote {options!r}")
    return result


@dataclass
class ButtonsCheck:
    messages: int = 0  # bot messages showing buttons at the end
    pressable: int = 0
    stale: int = 0  # older than their record: a press is refused once and heals them
    after_kill: int = 0  # busy or disabled: a press on them cut by a fault (a kill, 429s)
    stuck: list[str] = field(default_factory=list)  # busy, disabled or gone, unexplained
    pressable_ids: list[int] = field(default_factory=list)
    pressed: int = 0  # pressable ones pressed (Regenerate) once the load stopped
    pressed_answered: int = 0


def check_buttons(
    server: FakeDiscord,
    faults: Sequence[Fault],
    requests: Sequence[Request],
    judge: Judge,
    stored: dict[str, Any],
) -> ButtonsCheck:
    records = {
        str(i): (json.loads(data), int(version))
        for kind, i, data, version, _ in stored["records"]
        if kind == RECORD_KIND
    }
    # Presses a fault cut between their steps: killed in flight, or given up on 429s.
    killed = {message for fault in faults for message in fault.presses}
    # (A press answered may still have met 429s on its last step: the edit that takes its
    # buttons away, or gives them back.)
    killed |= {r.message_id for r in requests if r.press and r.message_id and judge.gave_up(r)}
    result = ButtonsCheck()
    for message in server.sent_messages:
        shown = buttons_of(message)
        if message.deleted or not shown:
            continue
        result.messages += 1
        custom = str(shown[0].get("custom_id", ""))
        parts = custom.split(":")  # charbot:<action>:<record>:<version>
        record = records.get(parts[2]) if len(parts) == 4 else None
        disabled = all(b.get("disabled") for b in shown)
        if record is not None and not disabled and not record[0].get("busy"):
            if record[1] == int(parts[3]):
                result.pressable += 1
                result.pressable_ids.append(message.id)
            else:
                result.stale += 1
        elif message.id in killed and record is not None:
            result.after_kill += 1
        else:
            state = "gone" if record is None else ("busy" if record[0].get("busy") else "disabled")
            result.stuck.append(f"message {message.id} in channel {message.channel_id}: {state}")
    return result


async def press_at_end(server: FakeDiscord, buttons: ButtonsCheck, count: int) -> None:
    """Press Regenerate (as the owner, who may) under the newest `count` pressable messages:
    each must be answered, the proof that "pressable" means what it says."""
    handles = []
    for message_id in buttons.pressable_ids[-count:]:
        try:
            handle = await server.press_button(message_id, "Regenerate", user=server.world.owner)
        except InvocationError:  # its shard has no session: a press not made is not counted
            continue
        handles.append(handle)
    buttons.pressed = len(handles)

    def done() -> bool:
        return all(any(r.kind == "edit" or r.ephemeral for r in h.replies) for h in handles)

    with contextlib.suppress(TimeoutError):
        await server.wait_until(done, END_PRESS_TIMEOUT, "the presses at the end")
    buttons.pressed_answered = sum(
        any(r.kind == "edit" for r in h.replies) and not any(r.ephemeral for r in h.replies)
        for h in handles
    )


def read_store(url: str) -> int:
    """`soak.py --read-store URL`: print what the store keeps as JSON (a fresh process's view)."""
    import asyncio

    from bot.settings import SettingsRegistry
    from bot.stores import open_store

    async def dump() -> dict[str, Any]:
        store = await open_store(url, SettingsRegistry())
        try:
            contents = await store.dump()
        finally:
            await store.close()
        return {"settings": contents.settings, "records": contents.records}

    print(json.dumps(asyncio.run(dump())))
    return 0


def write_path(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
