"""The plugin: the `markov` backend kind, `/markov stats` (written once, for Discord and the
console chat), and `python -m bot markov-stats MODEL`.

`register` is the Discord-free part (the console chat calls it alone): it gives the model
registry the backend kind and declares the command; `setup` makes the module a discord.py
extension, whose commands the bot builds from the declarations; `register_cli` adds the
subcommand.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.api import (
    CharBot,
    Command,
    CommandError,
    CommandGroup,
    Context,
    ModelLoadError,
    ModelSpec,
    Option,
    Services,
    Subcommand,
    Subcommands,
)
from charbot_markov.backend import MarkovBackend

KIND = "markov"


async def start_markov(spec: ModelSpec) -> MarkovBackend:
    """The factory for `[models.NAME] backend = "markov"`: `path` is the text to learn from."""
    if spec.path is None:
        raise ModelLoadError(f"Model {spec.name!r} is a Markov chain and needs a path to a text.")
    return await MarkovBackend.start(spec.name, Path(spec.path))


def markov_models(services: Services) -> list[str]:
    """The loaded models that are Markov chains."""
    return [name for name, backend in services.models.items() if isinstance(backend, MarkovBackend)]


def figures(services: Services, name: str) -> str:
    """A Markov model's order, transitions and vocabulary, in a sentence."""
    backend = services.models.get(name)  # a name not served is one sentence already
    if not isinstance(backend, MarkovBackend):
        chains = ", ".join(markov_models(services)) or "none is loaded"
        raise CommandError(f"Model {name!r} is not a Markov chain; the Markov models: {chains}.")
    chain = backend.chain
    return (
        f"a Markov chain of order {chain.order}, {chain.transitions:,} transitions, "
        f"a vocabulary of {len(chain.vocab):,} tokens."
    )


async def stats(ctx: Context, model: str | None = None) -> str:
    """`/markov stats`: the figures of the model given, or of the channel's."""
    name = model or await ctx.services.completions.channel_model(ctx.channel_id)
    return f"{ctx.bold(name)}: {figures(ctx.services, name)}"


async def stats_subcommand(args: argparse.Namespace, services: Services) -> int:
    """`python -m bot markov-stats MODEL`: the same figures, in a terminal."""
    spec = services.config.models.models.get(args.chain)
    if spec is None:
        raise CommandError(f"The config names no model {args.chain!r}.")
    await services.models.start(spec)
    print(f"{args.chain}: {figures(services, args.chain)}")
    return 0


def stats_options(parser: argparse.ArgumentParser) -> None:
    # Its own dest: `model` is the common --model option (the default model).
    parser.add_argument("chain", metavar="MODEL", help="a Markov model the config names")


def commands(services: Services) -> CommandGroup:
    model = Option(
        "model",
        str,
        "A Markov model the bot serves (default: this channel's model)",
        required=False,
        suggest=lambda: markov_models(services),
    )
    return CommandGroup(
        "markov",
        "The Markov chain models.",
        (
            Command(
                "stats",
                "Show a Markov chain's order, transitions and vocabulary.",
                stats,
                options=(model,),
            ),
        ),
    )


def register(services: Services) -> None:
    services.models.register_kind(KIND, start_markov)
    services.commands.add(commands(services), owner=__name__)


def register_cli(cli: Subcommands) -> None:
    summary = "show a Markov model's order, transitions and vocabulary"
    cli.add(Subcommand("markov-stats", summary, stats_subcommand, stats_options), owner=__name__)


async def setup(bot: CharBot) -> None:
    register(bot.services)


async def teardown(bot: CharBot) -> None:
    bot.models.unregister_kind(KIND)
