"""Chat templates (`models/chat.py`): the prompt a conversation becomes, and where a turn ends."""

from __future__ import annotations

import pytest

from models.chat import ChatMessage, detect_chat_template, render_chat

CONVERSATION = [
    ChatMessage(None, "Verona.  A street."),
    ChatMessage("ROMEO", "But soft!\n\n\nWhat light?"),
    ChatMessage("user", "  hello  "),
]


def test_lines_is_one_line_per_message_and_a_turn_ends_at_the_newline() -> None:
    chat = render_chat("lines", CONVERSATION, "JULIET")
    assert chat.prompt == "Verona. A street.\nROMEO: But soft! What light?\nuser: hello\nJULIET: "
    assert chat.stop == ("\n",)


def test_play_has_headings_and_a_turn_ends_at_a_blank_line() -> None:
    chat = render_chat("play", CONVERSATION, "JULIET")
    # Blank lines inside a speech would end it early: they go.
    assert chat.prompt == (
        "Verona.  A street.\n\nROMEO:\nBut soft!\nWhat light?\n\nuser:\nhello\n\nJULIET:\n"
    )
    assert chat.stop == ("\n\n",)


@pytest.mark.parametrize(
    ("text", "template"),
    [
        ("First Citizen:\nBefore we proceed.\n\nAll:\nSpeak, speak.\n\nMENENIUS:\nWhy?\n", "play"),
        ("alice: hi\nbob: hello there\nalice: how are you?\n", "lines"),
        ("A novel. It has paragraphs.\n\nMany of them.\n\nNo speakers.\n", "lines"),
        # A heading or two in prose does not make a play.
        ("Notes:\nsome text\n\nMore prose.\n\nAnd more.\n\nAnd more.\n", "lines"),
    ],
)
def test_the_template_is_detected_from_the_text(text: str, template: str) -> None:
    assert detect_chat_template(text) == template
