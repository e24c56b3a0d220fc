"""What README.md and docs/ show, checked against the code: every TOML sample loads with the real
config loader, every `python -m bot|exporter ...` line names subcommands and options that exist,
and every relative link resolves. A doc that drifts from the code fails here, not in a reader's
terminal."""

from __future__ import annotations

import argparse
import importlib
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from bot.config import load_config

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# `python -m bot ...` up to what ends a shell word list in prose or a pipeline.
COMMAND = re.compile(r"python3? -m (bot|exporter)\b([^`|;&#)\n]*)")
# A TOML sample that is not a charbot config says which file it belongs to on its first line.
OTHER_FILE = re.compile(r"^#\s*\S+\.toml\b|^\[(project|tool|build-system)\b")


def _where(path: Path, text: str, offset: int) -> str:
    return f"{path.relative_to(REPO)}:{text.count(chr(10), 0, offset) + 1}"


def toml_samples() -> Iterator[Any]:
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) == "toml":
                yield pytest.param(match.group(2), id=_where(path, text, match.start()))


def command_lines() -> Iterator[Any]:
    seen: set[tuple[str, str]] = set()
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in COMMAND.finditer(text):
            key = (match.group(1), match.group(2).strip())
            if key not in seen:
                seen.add(key)
                # The exporter's CLI imports the train extra (torch): that lane only.
                marks = [pytest.mark.torch] if key[0] == "exporter" else []
                yield pytest.param(*key, id=_where(path, text, match.start()), marks=marks)


def relative_links() -> Iterator[Any]:
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in LINK.finditer(text):
            target = match.group(1)
            if not re.match(r"[a-z]+:|#", target):
                yield pytest.param(path, target, id=_where(path, text, match.start()))


@pytest.mark.parametrize("sample", list(toml_samples()))
def test_every_toml_sample_loads(sample: str, tmp_path: Path) -> None:
    if OTHER_FILE.match(sample.lstrip()):
        tomllib.loads(sample)  # another file's sample: valid TOML is all we can check
        return
    config = tmp_path / "charbot.toml"
    config.write_text(sample, encoding="utf-8")
    load_config(config, env={"CHARBOT_DATA_DIR": str(tmp_path)})


class _Parsed(BaseException):
    """Raised in place of parsing, carrying the CLI's own parser out of its main()."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def _parser_of(module: str, monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:
    def capture(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> NoReturn:
        raise _Parsed(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    main = importlib.import_module(f"{module}.__main__").main
    try:
        main(["--help"])
    except _Parsed as parsed:
        return parsed.parser
    raise AssertionError(f"python -m {module} never parsed its arguments")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


@pytest.mark.parametrize(("module", "arguments"), list(command_lines()))
def test_every_command_line_names_real_subcommands_and_options(
    module: str, arguments: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parser = _parser_of(module, monkeypatch)
    known = _options(parser)
    path = [module]
    for word in arguments.replace("[", " ").replace("]", " ").split():
        subcommands = _subcommands(parser)
        if word in subcommands:
            parser = subcommands[word]
            known |= _options(parser)
            path.append(word)
        elif word.startswith("--"):
            option = word.split("=", 1)[0]
            assert option in known, f"`python -m {' '.join(path)}` has no option {option}"


@pytest.mark.parametrize(("page", "target"), list(relative_links()))
def test_every_relative_link_resolves(page: Path, target: str) -> None:
    assert (page.parent / target.split("#", 1)[0]).exists(), f"{page.name} links to {target}"
