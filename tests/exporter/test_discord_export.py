"""DiscordChatExporter JSON exports as corpora: the exact text made, and malformed files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exporter.cli import main
from exporter.data import read_corpora
from exporter.discord_export import DiscordOptions
from exporter.errors import CorpusError
from tests.exporter.test_cli import TINY, assert_one_sentence, run

ALICE = {
    "id": "101",
    "name": "alice",
    "nickname": "Alice",
    "isBot": False,
    "roles": [{"id": "900", "name": "Moderators", "color": None, "position": 1}],
}
BOB: dict[str, Any] = {"id": "102", "name": "bob_b", "nickname": None, "isBot": False, "roles": []}
ROBOT: dict[str, Any] = {"id": "103", "name": "MEE6", "nickname": "MEE6", "isBot": True,
                         "roles": []}  # fmt: skip


_IDS = iter(range(5000, 10**6))


def message(
    author: dict[str, Any],
    content: str,
    kind: str = "Default",
    attachments: int = 0,
    mentions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "id": str(next(_IDS)),
        "type": kind,
        "timestamp": "2024-05-01T12:00:00+00:00",
        "timestampEdited": None,
        "callEndedTimestamp": None,
        "isPinned": False,
        "content": content,
        "author": author,
        "attachments": [
            {"id": "1", "url": "https://cdn/x.png", "fileName": "x.png", "fileSizeBytes": 10}
        ]
        * attachments,
        "embeds": [],
        "stickers": [],
        "reactions": [],
        "mentions": mentions or [],
        "inlineEmojis": [],
    }


def export(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The layout DiscordChatExporter's JSON writer uses."""
    return {
        "guild": {"id": "1", "name": "The Server", "iconUrl": ""},
        "channel": {"id": "555", "type": "GuildTextChat", "categoryId": None, "category": None,
                    "name": "general", "topic": None},
        "dateRange": {"after": None, "before": None},
        "exportedAt": "2024-05-02T00:00:00+00:00",
        "messages": messages,
        "messageCount": len(messages),
    }  # fmt: skip


MESSAGES = [
    message(ALICE, "hello <@102>, see <#555> and <#777> 🎉", mentions=[BOB]),
    message(BOB, "hi <@!101> and <@&900>! look https://example.com/a?b=1 now"),
    message(ROBOT, "!rank is 5"),  # a bot: skipped
    message(BOB, "", kind="GuildMemberJoin"),  # a system message: skipped
    message(ALICE, "Pinned a message.", kind="ChannelPinnedMessage"),  # skipped
    message(ALICE, "", attachments=1),  # attachment only: skipped
    message(BOB, "   "),  # nothing to read: skipped
    message(BOB, "first line\nsecond line <:pog:123456> <a:dance:42> <@999>", kind="Reply"),
    message(ALICE, "https://only.a/link"),  # kept; with --drop-urls nothing is left
]

EXPECTED = (
    "Alice: hello @bob_b, see #general and #channel 🎉\n"
    "bob_b: hi @Alice and @Moderators! look https://example.com/a?b=1 now\n"
    "bob_b: first line second line :pog: :dance: @user\n"
    "Alice: https://only.a/link\n"
)


@pytest.fixture
def server(tmp_path: Path) -> Path:
    path = tmp_path / "server.json"
    path.write_text(json.dumps(export(MESSAGES), ensure_ascii=False), encoding="utf-8")
    return path


def test_the_corpus_is_exactly_what_the_rules_say(server: Path) -> None:
    corpus = read_corpora([server])
    assert corpus.text == EXPECTED
    summary = corpus.summary()
    assert summary["messages_kept"] == 4
    assert summary["messages_skipped"] == {
        "attachment only": 1,
        "from a bot": 1,
        "no text": 1,
        "system message": 2,
    }
    assert summary["characters"] == len(EXPECTED)
    assert summary["distinct_characters"] == len(set(EXPECTED))
    assert corpus.files[0].format == "discord"


def test_no_authors_and_dropped_urls(server: Path) -> None:
    corpus = read_corpora([server], "auto", DiscordOptions(authors=False, drop_urls=True))
    assert corpus.text == (
        "hello @bob_b, see #general and #channel 🎉\n"
        "hi @Alice and @Moderators! look now\n"
        "first line second line :pog: :dance: @user\n"
    )
    assert corpus.summary()["messages_skipped"]["no text"] == 2


def test_exports_and_text_files_mix_in_one_run(tmp_path: Path, server: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text('{"messages" is how this plain note begins}\n', encoding="utf-8")
    corpus = read_corpora([server, text], "auto")
    assert [f.format for f in corpus.files] == ["discord", "text"]
    assert corpus.text == EXPECTED + text.read_text(encoding="utf-8")
    # Forced the other way, the note is a malformed export.
    with pytest.raises(CorpusError, match="not valid JSON"):
        read_corpora([text], "discord")


def test_an_export_suits_the_lines_chat_template_whatever_it_holds(
    tmp_path: Path, server: Path
) -> None:
    """One message per line, `name: content`: a Discord export is `lines`, even beside a text
    that looks like a play."""
    play = tmp_path / "play.txt"
    play.write_text("ROMEO:\nHi.\n\nJULIET:\nHo.\n\nROMEO:\nHa.\n\n", encoding="utf-8")
    assert read_corpora([play]).chat_template == "play"
    corpus = read_corpora([server, play])
    assert corpus.chat_template == "lines"
    assert corpus.provenance()["chat_template"] == "lines"


def test_a_tiny_model_trains_exports_and_generates_on_an_export(
    tmp_path: Path, server: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "big.json"
    # Twelve copies, each message under a new id (a message read twice counts once).
    copies = [{**m, "id": str(int(m["id"]) + 1000 * n)} for n in range(12) for m in MESSAGES]
    big.write_text(json.dumps(export(copies), ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "run"
    status, printed, _ = run(capsys, "train", str(big), "--out", str(out), *TINY)
    assert status == 0
    assert "corpus: 1 file(s), 48 messages kept, 60 skipped" in printed
    status, _, _ = run(capsys, "export", str(out / "best.pt"), "--length", "40")
    assert status == 0
    status, printed, _ = run(capsys, "sample", str(out / "best.onnx"), "--length", "30")
    assert status == 0 and len(printed) == 31


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"messages": [', "is not valid JSON: Expecting value at line 1, column 15"),
        ("[1, 2]", "is not a DiscordChatExporter export: it is a JSON array"),
        ('{"guild": {}}', 'an object without a "messages" list'),
        (
            json.dumps(export([message(ALICE, "ok"), {"type": "Default", "author": ALICE}])),
            'messages[1] has no "content" string (it is missing)',
        ),
        (
            json.dumps(export([{**message(ALICE, "ok"), "author": {"name": "x"}}])),
            'messages[0].author has no "isBot" boolean',
        ),
        (json.dumps(export([message(ROBOT, "beep")])), "all 1 were skipped (1 from a bot)"),
    ],
)
def test_malformed_exports_are_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    status, _, err = run(capsys, "train", str(path), "--out", str(tmp_path / "run"), *TINY)
    assert status == 1
    assert_one_sentence(err)
    assert str(path) in err and expected in err, err
    assert not err.rstrip().endswith(("?.", "..")), err  # a sentence ends once


def test_format_is_an_option() -> None:
    assert main(["train", "x.txt", "--out", "o", "--format", "csv"]) == 2
