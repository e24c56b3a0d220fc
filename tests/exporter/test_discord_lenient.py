"""Real DiscordChatExporter files vary: versions, `--reverse`, `--partition`, overlapping runs.
The reader takes them as they are, counts every message once, and leaves excluded authors out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exporter.data import read_corpora
from exporter.discord_export import DiscordOptions, read_excluded_authors
from exporter.errors import CorpusError
from tests.exporter.test_cli import assert_one_sentence, run

GUILD = {"id": "880000000000000001", "name": "Tea Club", "iconUrl": "https://cdn/icons/1.png"}
CHANNEL = {
    "id": "880000000000000555",
    "type": "GuildTextChat",
    "categoryId": "880000000000000500",
    "category": "Text Channels",
    "name": "general",
    "topic": "anything goes",
}
ROLE = {"id": "880000000000000900", "name": "Regulars", "color": "#1ABC9C", "position": 2}


def person(user_id: str, name: str, nickname: str | None, *, bot: bool = False) -> dict[str, Any]:
    """An author as DiscordChatExporter 2.4x writes it."""
    return {
        "id": user_id,
        "name": name,
        "discriminator": "0000",
        "nickname": nickname,
        "color": "#1ABC9C" if not bot else None,
        "isBot": bot,
        "roles": [ROLE] if not bot else [],
        "avatarUrl": f"https://cdn.discordapp.com/avatars/{user_id}/abc.png?size=512",
    }


ANNA = person("880000000000001001", "anna_k", "Anna")
BEN = person("880000000000001002", "benji", "Ben")
CLEO = person("880000000000001003", "cleo.x", "Cleopatra")  # excluded in some tests
HELPER = person("880000000000001009", "helperbot", "Helper", bot=True)


def dce_message(
    number: int,
    author: dict[str, Any],
    content: str,
    kind: str = "Default",
    *,
    mentions: tuple[dict[str, Any], ...] = (),
    reply_to: int | None = None,
) -> dict[str, Any]:
    """A message as the current DiscordChatExporter writes it (markdown rendered)."""
    data: dict[str, Any] = {
        "id": str(1_200_000_000_000_000_000 + number),
        "type": kind,
        "timestamp": f"2024-06-01T10:{number // 60 % 60:02d}:{number % 60:02d}.123+02:00",
        "timestampEdited": None,
        "callEndedTimestamp": None,
        "isPinned": False,
        "content": content,
        "author": author,
        "attachments": [],
        "embeds": [],
        "stickers": [],
        "reactions": [
            {
                "emoji": {"id": "", "name": "👍", "code": "thumbsup", "isAnimated": False,
                          "imageUrl": "https://cdn/emoji/1f44d.svg"},
                "count": 2,
                "users": [],
            }
        ]
        if number % 5 == 0
        else [],
        "mentions": list(mentions),
        "inlineEmojis": [],
    }  # fmt: skip
    if reply_to is not None:
        data["reference"] = {
            "messageId": str(1_200_000_000_000_000_000 + reply_to),
            "channelId": CHANNEL["id"],
            "guildId": GUILD["id"],
        }
    return data


def dce_file(messages: list[dict[str, Any]], **channel: Any) -> dict[str, Any]:
    return {
        "guild": GUILD,
        "channel": {**CHANNEL, **channel},
        "dateRange": {"after": None, "before": None},
        "exportedAt": "2024-06-02T09:00:00.000+02:00",
        "messages": messages,
        "messageCount": len(messages),
    }


def conversation(count: int) -> list[dict[str, Any]]:
    """`count` messages, oldest first: Anna and Ben talking, Cleo now and then, some noise."""
    out: list[dict[str, Any]] = []
    for n in range(count):
        if n % 10 == 9:
            out.append(dce_message(n, HELPER, f"Used /roll: {n}", "20"))  # unnamed type: a number
        elif n % 17 == 16:
            out.append(dce_message(n, BEN, "Joined the server.", "GuildMemberJoin"))
        elif n % 19 == 18:
            out.append(dce_message(n, ANNA, "raised a hand", "StageRaiseHand"))  # new to us
        elif n % 7 == 3:
            out.append(dce_message(n, CLEO, f"cleo says {n}"))
        elif n % 6 == 5:
            out.append(
                dce_message(n, ANNA, f"@Cleopatra what about {n}?", "Reply", mentions=(CLEO,),
                            reply_to=n - 2)
            )  # fmt: skip
        else:
            speaker = ANNA if n % 2 else BEN
            out.append(dce_message(n, speaker, f"line {n} ☕"))
    return out


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def lines_of(text: str) -> list[str]:
    return text.splitlines()


def test_a_current_export_reads_in_order_with_unnamed_types_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "Tea Club - Text Channels - general [880000000000000555].json",
                 dce_file(conversation(40)))  # fmt: skip
    corpus = read_corpora([path])
    lines = lines_of(corpus.text)
    assert lines[0] == "Ben: line 0 ☕" and lines[1] == "Anna: line 1 ☕"
    assert "Cleopatra: cleo says 3" in lines
    assert "Anna: @Cleopatra what about 5?" in lines
    summary = corpus.summary()
    assert summary["messages_skipped"] == {
        "from a bot": 4,
        "system message": 2,
        "unknown type": 2,
    }
    assert summary["messages_kept"] == 32


def test_older_exports_missing_fields_numbers_and_other_names(tmp_path: Path) -> None:
    messages = conversation(12)
    for m in messages:
        for key in ("stickers", "inlineEmojis", "reactions", "callEndedTimestamp"):
            m.pop(key)
        m["author"] = {k: v for k, v in m["author"].items() if k not in ("nickname", "color")}
        m["mentions"] = [{k: v for k, v in u.items() if k != "nickname"} for u in m["mentions"]]
    messages[0]["type"] = "0"  # an old export's number for Default
    messages[1]["type"] = "default"
    messages[2]["type"] = 19  # Reply, as a JSON number
    messages[4]["type"] = "UserJoin"  # another tool's name for GuildMemberJoin
    messages[6]["type"] = "StageStart"  # a type the reader has never heard of
    messages[8]["reference"] = {"messageId": messages[7]["id"]}  # no channelId, no type
    path = write(tmp_path / "old.json", dce_file(messages))
    corpus = read_corpora([path])
    lines = lines_of(corpus.text)
    # Without nicknames the user names are the names.
    assert lines[:3] == ["benji: line 0 ☕", "anna_k: line 1 ☕", "benji: line 2 ☕"]
    assert corpus.summary()["messages_skipped"] == {
        "from a bot": 1,
        "system message": 1,
        "unknown type": 1,
    }


def test_a_reverse_export_reads_oldest_first(tmp_path: Path) -> None:
    forward = write(tmp_path / "forward.json", dce_file(conversation(30)))
    backward = write(tmp_path / "reverse.json", dce_file(conversation(30)[::-1]))
    assert read_corpora([backward]).text == read_corpora([forward]).text


def test_an_overlapping_partitioned_pair_counts_each_message_once(tmp_path: Path) -> None:
    messages = conversation(100)
    part1 = messages[:60]
    part2 = [*messages[50:], messages[70]]  # overlaps part 1, and holds one message twice
    base = "Tea Club - Text Channels - general [880000000000000555]"
    first = write(tmp_path / f"{base} [part 1].json", dce_file(part1))
    second = write(tmp_path / f"{base} [part 2].json", dce_file(part2))
    whole = read_corpora([write(tmp_path / "whole.json", dce_file(messages))])

    corpus = read_corpora([first, second])
    assert corpus.text == whole.text
    summary = corpus.summary()
    assert summary["messages_kept"] == whole.summary()["messages_kept"]
    assert summary["messages_skipped"].pop("already read") == 11
    assert summary["messages_skipped"] == whole.summary()["messages_skipped"]
    # Given twice, a file adds nothing the second time, and is no error.
    again = read_corpora([first, first])
    assert again.text == read_corpora([first]).text


def test_excluded_authors_leave_no_message_and_no_name(tmp_path: Path) -> None:
    raw = conversation(60)
    raw.append(dce_message(60, BEN, f"hey <@{CLEO['id']}> and <@!{ANNA['id']}>"))
    path = write(tmp_path / "general.json", dce_file(raw))
    excluded = write_ids(tmp_path / "optouts.txt", f"# opted out\n\n{CLEO['id']}\n")
    options = DiscordOptions(excluded=read_excluded_authors(excluded))
    corpus = read_corpora([path], "auto", options)
    assert "Cleopatra" not in corpus.text and "cleo" not in corpus.text
    assert "Anna: @user what about 5?" in lines_of(corpus.text)
    assert lines_of(corpus.text)[-1] == "Ben: hey @user and @Anna"
    theirs = sum(m["author"]["id"] == CLEO["id"] for m in raw)
    assert theirs and corpus.summary()["messages_skipped"]["excluded author"] == theirs


def write_ids(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("123\nnot-an-id\n", "line 2 is not a Discord user id (digits only): 'not-an-id'"),
        (None, "does not exist"),
    ],
)
def test_a_bad_exclusion_file_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, expected: str
) -> None:
    corpus = write(tmp_path / "general.json", dce_file(conversation(20)))
    ids = tmp_path / "ids.txt"
    if content is not None:
        ids.write_text(content, encoding="utf-8")
    status, _, err = run(
        capsys, "train", str(corpus), "--out", str(tmp_path / "run"), "--exclude-authors", str(ids)
    )
    assert status == 1
    assert_one_sentence(err)
    assert expected in err, err
    with pytest.raises(CorpusError):
        read_excluded_authors(ids)
