"""A soak run's report: the figures (`summarize`, what `--json` writes), the text table, and a plot
of latency and outcomes over time with the faults marked (when matplotlib is installed)."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.soaking import ledger
from bench.soaking.checks import ButtonsCheck, SettingsCheck
from bench.soaking.faults import Fault
from bench.soaking.ledger import Request, sentence_kind

AFTER_FAULT = 10.0  # seconds: a request sent this soon after a fault began counts as "after"
BIN = 5.0  # seconds per bar of the outcome plot


def percentile(values: Sequence[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def ms(value: float | None) -> float | None:
    return None if value is None else round(1000 * value, 1)


def latency(requests: Sequence[Request]) -> dict[str, Any]:
    values = [r.latency for r in requests if r.status == "answered" and r.latency is not None]
    return {
        "n": len(values),
        "p50_ms": ms(percentile(values, 50)),
        "p99_ms": ms(percentile(values, 99)),
    }


def after_fault(request: Request, faults: Sequence[Fault]) -> bool:
    """Sent during a fault, or within AFTER_FAULT seconds of one's start."""
    for fault in faults:
        end = fault.done_at if fault.done_at is not None else fault.at
        if fault.at <= request.sent <= max(end, fault.at + AFTER_FAULT):
            return True
    return False


def outcomes(requests: Sequence[Request]) -> dict[str, Any]:
    unanswered = Counter(r.reason for r in requests if r.status == "unanswered")
    return {
        "sent": len(requests),
        "answered": sum(r.status == "answered" for r in requests),
        "refused": sum(r.status == "refused" for r in requests),
        "unanswered": {reason: unanswered.get(reason, 0) for reason in ledger.REASONS},
        "answered_twice": sum(r.twice for r in requests),
        **latency(requests),
    }


def summarize(
    requests: Sequence[Request],
    faults: Sequence[Fault],
    settings: SettingsCheck,
    buttons: ButtonsCheck,
    unexpected_exits: Sequence[str],
    failed_faults: Sequence[str],
    run: dict[str, Any],
) -> dict[str, Any]:
    by_kind = {k: outcomes([r for r in requests if r.kind == k]) for k in ledger.KINDS}
    refusals = Counter(sentence_kind(r.sentence) for r in requests if r.status == "refused")
    recovery: dict[str, Any] = {}
    for kind in dict.fromkeys(f.kind for f in faults):
        times = [f.recovery for f in faults if f.kind == kind]
        done = [t for t in times if t is not None]
        recovery[kind] = {
            "count": len(times),
            "recovered": len(done),
            "median_s": round(statistics.median(done), 2) if done else None,
            "max_s": round(max(done), 2) if done else None,
        }
    total = outcomes(requests)
    unexplained = [r for r in requests if r.reason == ledger.UNEXPLAINED]
    invariants = {
        "answered_twice": total["answered_twice"],
        "unexplained_unanswered": total["unanswered"][ledger.UNEXPLAINED],
        "settings_lost": len(settings.lost),
        "faults_not_recovered": sum(f.recovery is None for f in faults),
        "buttons_stuck": len(buttons.stuck),
        "end_presses_unanswered": buttons.pressed - buttons.pressed_answered,
        "unexpected_exits": len(unexpected_exits),
        "faults_failed": len(failed_faults),
    }
    return {
        "run": run,
        "totals": total,
        "by_kind": {k: v for k, v in by_kind.items() if v["sent"]},
        "refusals": dict(refusals.most_common()),
        "latency": {
            "calm": latency([r for r in requests if not after_fault(r, faults)]),
            "after_fault": latency([r for r in requests if after_fault(r, faults)]),
        },
        "faults": [
            {
                "kind": f.kind,
                "at_s": round(f.at, 2),
                "done_s": None if f.done_at is None else round(f.done_at, 2),
                "target": f.target,
                "recovery_s": None if f.recovery is None else round(f.recovery, 2),
                "down": {
                    str(s): [round(a, 2), None if b is None else round(b, 2)]
                    for s, (a, b) in f.down.items()
                },
                "note": f.note.strip("; "),
            }
            for f in faults
        ],
        "recovery": recovery,
        "settings": {
            "confirmed_writes": settings.written,
            "checked": settings.checked,
            "lost": len(settings.lost),
            "lost_detail": settings.lost[:20],
        },
        "buttons": {
            "messages": buttons.messages,
            "pressable": buttons.pressable,
            "stale": buttons.stale,
            "held_after_a_kill": buttons.after_kill,
            "stuck": len(buttons.stuck),
            "stuck_detail": buttons.stuck[:20],
            "pressed_at_end": buttons.pressed,
            "answered_at_end": buttons.pressed_answered,
        },
        "unexpected_exits": list(unexpected_exits),
        "faults_failed": list(failed_faults),
        "invariants": invariants,
        "ok": not any(invariants.values()),
        "unexplained_detail": [describe(r) for r in unexplained[:20]],
        "twice_detail": [describe(r) for r in requests if r.twice][:20],
        "timeline": [
            [round(r.sent, 3), r.kind, r.status, r.reason, ms(r.latency)] for r in requests
        ],
    }


def describe(request: Request) -> str:
    handles = "; ".join(
        f"{h.command}: responded={h.responded} replies={[(x.kind, x.ephemeral) for x in h.replies]}"
        f"{' error=' + h.error if h.error else ''}"
        for h in request.handles
    )
    return (
        f"#{request.id} {request.kind} at {request.sent:.2f} s, shard {request.shard}, "
        f"channel {request.channel_id}, {request.status} {request.reason} {handles}"
    )


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def longest_down(fault: dict[str, Any]) -> float | None:
    """The longest a shard the fault took down had no session (None: none taken down, or one
    never back)."""
    windows = list(fault["down"].values())
    if not windows or any(end is None for _, end in windows):
        return None
    return float(max(end - start for start, end in windows))


def table(summary: dict[str, Any]) -> str:
    reasons = ("killed", "down", "late", "429s", "unexpl.")
    head = f"{'request':15} {'sent':>6} {'answered':>8} {'refused':>7} "
    head += " ".join(f"{r:>7}" for r in reasons) + f" {'twice':>5} {'p50 ms':>8} {'p99 ms':>8}"
    lines = [head, "-" * len(head)]
    rows = [*summary["by_kind"].items(), ("all", summary["totals"])]
    for name, row in rows:
        missing = [row["unanswered"][r] for r in ledger.REASONS]
        line = f"{name:15} {row['sent']:6} {row['answered']:8} {row['refused']:7} "
        line += " ".join(f"{m:7}" for m in missing) + f" {row['answered_twice']:5} "
        line += f"{number(row['p50_ms']):>8} {number(row['p99_ms']):>8}"
        if name == "all":
            lines.append("-" * len(head))
        lines.append(line)
    lines.append("(unanswered: killed in flight / sent while its shard was down / too late for "
                 "Discord's 3 s / a 429 on each of discord.py's tries / unexplained)")  # fmt: skip
    lines += ["", "refused, by sentence:"]
    lines += [f"  {count:5}  {text}" for text, count in summary["refusals"].items()] or ["  none"]
    calm, hit = summary["latency"]["calm"], summary["latency"]["after_fault"]
    lines += [
        "",
        f"latency, no fault in the 10 s before: p50 {number(calm['p50_ms'])} ms, "
        f"p99 {number(calm['p99_ms'])} ms ({calm['n']} answers)",
        f"latency, a fault in the 10 s before:  p50 {number(hit['p50_ms'])} ms, "
        f"p99 {number(hit['p99_ms'])} ms ({hit['n']} answers)",
        "",
        f"{'fault':5} {'at s':>7} {'kind':11} {'down s':>7} {'recovery s':>10}  target",
    ]
    for i, f in enumerate(summary["faults"]):
        recovery = "NONE" if f["recovery_s"] is None else f"{f['recovery_s']:.1f}"
        down = longest_down(f)
        shown = "-" if down is None else f"{down:.1f}"
        note = f"  ({f['note']})" if f["note"] else ""
        lines.append(
            f"{i:5} {f['at_s']:7.1f} {f['kind']:11} {shown:>7} {recovery:>10}  {f['target']}{note}"
        )
    if not summary["faults"]:
        lines.append("  none")
    lines.append("")
    for kind, r in summary["recovery"].items():
        lines.append(
            f"recovery from {kind}: {r['recovered']}/{r['count']}, median {r['median_s']} s, "
            f"max {r['max_s']} s"
        )
    s, b = summary["settings"], summary["buttons"]
    lines += [
        "",
        f"settings: {s['confirmed_writes']} confirmed writes to {s['checked']} (channel, key) "
        f"pairs, read back from a fresh process: {s['lost']} lost",
        f"buttons: {b['messages']} messages with buttons: {b['pressable']} pressable, "
        f"{b['stale']} stale (a press refreshes them), {b['held_after_a_kill']} held by a press "
        f"a fault cut (killed, 429s), {b['stuck']} stuck unexplained; pressed at the end: "
        f"{b['answered_at_end']} of {b['pressed_at_end']} answered",
        "",
        "invariants: "
        + ", ".join(f"{k} {v}" for k, v in summary["invariants"].items())
        + f"  -> {'OK' if summary['ok'] else 'FAILED'}",
    ]
    return "\n".join(lines)


def plot(summary: dict[str, Any], path: Path) -> Path | None:
    """Latency of each answer over time, and the outcomes per BIN seconds, the faults marked;
    None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    timeline = summary["timeline"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    answered = [
        (t, lat / 1000) for t, _, status, _, lat in timeline if status == "answered" and lat
    ]
    if answered:
        top.scatter([a[0] for a in answered], [a[1] for a in answered], s=6, alpha=0.6)
    top.set_yscale("log")
    top.set_ylabel("latency of an answer (s)")
    end = max((row[0] for row in timeline), default=0.0) + BIN
    bins = int(end // BIN) + 1
    series = {"answered": [0] * bins, "refused": [0] * bins}
    for reason in ledger.REASONS:
        series[f"unanswered: {reason}"] = [0] * bins
    for t, _, status, reason, _ in timeline:
        name = status if status != "unanswered" else f"unanswered: {reason}"
        series[name][int(t // BIN)] += 1
    x = [i * BIN for i in range(bins)]
    base = [0] * bins
    for name, counts in series.items():
        if any(counts):
            bottom.bar(x, counts, width=BIN * 0.9, bottom=base, align="edge", label=name)
            base = [a + b for a, b in zip(base, counts, strict=True)]
    bottom.set_ylabel(f"requests sent per {BIN:g} s")
    bottom.set_xlabel("run time (s)")
    bottom.legend(fontsize=7, loc="upper left")
    for fault in summary["faults"]:
        for axis in (top, bottom):
            axis.axvline(fault["at_s"], color="red", linestyle="--", linewidth=0.8)
        down = longest_down(fault)
        if down is not None:  # a shard without a session: shaded
            top.axvspan(fault["at_s"], fault["at_s"] + down, color="red", alpha=0.08)
        top.annotate(
            fault["kind"], (fault["at_s"], 1.0), xycoords=("data", "axes fraction"),
            rotation=90, fontsize=7, va="top", ha="right", color="red",
        )  # fmt: skip
    fig.suptitle("charbot soak: latency and outcomes over time (red: faults; shaded: a shard down)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
