"""How a completion is shown on Discord: prompt distinct, markdown escaped, within 2,000 chars."""

from __future__ import annotations

from discord.utils import remove_markdown

from bot.api import MESSAGE_LIMIT
from bot.generation.backend import Completion
from bot.plugins.replies import format_completion


def completion(prompt: str, text: str, unknown: tuple[str, ...] = ()) -> Completion:
    return Completion(text, prompt, len(text), "length", unknown, "m", 0.1)


def test_the_prompt_is_bold_and_the_text_escaped() -> None:
    shown = format_completion(completion("To *be*", " or _not_ to be, `that` is ~~it~~"))
    assert shown == r"**To \*be\*** or \_not\_ to be, \`that\` is \~\~it\~\~"


def test_a_long_text_is_cut_to_fit_and_never_splits_an_escape() -> None:
    for text in ("a" * 5000, "*" * 5000, "x*" * 2500):
        shown = format_completion(completion("Go", text))
        assert len(shown) <= MESSAGE_LIMIT
        assert shown.endswith("…") and not shown.endswith("\\…")
        body = shown[len("**Go**") : -1]
        # Unescaped, the body is a prefix of the generated text: nothing was altered, only cut.
        assert text.startswith(body.replace("\\", ""))
        assert len(body) > MESSAGE_LIMIT // 3


def test_a_long_prompt_is_shortened_and_unknown_characters_are_reported() -> None:
    shown = format_completion(completion("p" * 1000, "text", unknown=("☃", "☃", "Z")))
    assert len(shown) <= MESSAGE_LIMIT
    assert shown.startswith("**…" + "p" * 300 + "**text")
    assert "does not know" in shown and "☃" in shown and "Z" in shown


def test_an_empty_prompt_shows_only_the_text() -> None:
    assert remove_markdown(format_completion(completion("", "Hello"))) == "Hello"
