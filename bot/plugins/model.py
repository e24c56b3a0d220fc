"""`/model show` and `/model use NAME`: which model writes in a channel.

The config may name several models (a char-level and a word-level one, the Markov backend...);
each channel picks one, and the config's default serves the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bot.api import (
    ELLIPSIS,
    MODEL,
    CharbotError,
    Command,
    CommandGroup,
    Context,
    InvalidSettingError,
    ModelInfo,
    Option,
)
from models import BUNDLED_MODEL

if TYPE_CHECKING:
    from bot.api import CharBot, Services

#: The setting this plugin owns: the model that writes in a channel.
MODEL_KEY = "model"

CORPUS_FILES_NAMED = 3  # a corpus of more files is summarised as "N files"
TEXT_SHOWN = 80  # characters of any one text field of a model's provenance
MODELS_NAMED = 10  # models listed by name under "Also available"; the rest are counted


def describe_model(info: ModelInfo, *, markdown: bool = True) -> str:
    """A few lines on what is serving: name, what it is, its size, provenance, where it runs.
    Short whatever the model file says (a corpus of 150 files is "150 files")."""
    name = f"**{info.name}**" if markdown else info.name
    size = [f"{info.parameters:,} parameters"] if info.parameters else []
    size += [f"vocabulary of {info.vocab_size:,}"] if info.vocab_size else []
    lines = [", ".join([f"{name}: {_clip(info.description)}", *size])]
    lines.append(f"Running on: {_clip(info.provider)}")
    lines += [f"Note: {note}" for note in info.notes]
    training = describe_training(info.training)
    if training:
        lines.append(f"Training: {training}")
    return "\n".join(lines)


def describe_training(training: Mapping[str, Any]) -> str:
    """The provenance a reader cares about, in words; fields missing or of the wrong type are
    left out (the metadata comes from a file)."""
    parts = []
    corpus, files = training.get("corpus"), training.get("files")
    if isinstance(files, list) and len(files) > CORPUS_FILES_NAMED:
        corpus = f"{len(files):,} files"
    if isinstance(corpus, str) and corpus:
        parts.append(f"corpus {_clip(corpus)}")
    for key, unit in (("characters", "characters"), ("steps", "steps"), ("seconds", "s")):
        value = training.get(key)
        if _is_number(value):
            parts.append(f"{value:,.0f} {unit}")
    loss = training.get("best_val_loss")
    if _is_number(loss):
        parts.append(f"best validation loss {loss:.4f}")
    return ", ".join(parts)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_SHOWN else text[: TEXT_SHOWN - 1] + ELLIPSIS


def usable_models(services: Services) -> list[str]:
    """The models a channel may pick: those loaded. `/model use`'s autocomplete offers these
    and its check accepts these, so the two agree."""
    return services.models.names


async def show_model(ctx: Context) -> str:
    services = ctx.services
    name = await services.completions.channel_model(ctx.channel_id)
    text = describe_model(services.models.get(name).info, markdown=ctx.markdown)
    others = [n for n in services.models.names if n != name]
    if others:
        listed = ", ".join(others[:MODELS_NAMED])
        more = len(others) - MODELS_NAMED
        text += f"\nAlso available: {listed}" + (f" and {more} more" if more > 0 else "")
    return text


async def use_model(ctx: Context, name: str) -> str:
    await ctx.services.settings.set(ctx.channel_id, MODEL_KEY, name)
    return f"This channel now uses {ctx.bold(name)}."


def register(services: Services) -> None:
    """The setting and the commands this plugin owns; works without Discord."""
    configured = list(services.config.models.models)

    def validate_model(value: Any) -> str:
        usable = ", ".join(usable_models(services)) or "none is loaded"
        if value not in configured:
            hint = ""
            if value == BUNDLED_MODEL.stem:
                hint = (
                    f" The bundled model serves only when the config lists it beside yours: "
                    f'[models.{value}] path = "{BUNDLED_MODEL}".'
                )
            raise InvalidSettingError(
                f"There is no model named {value!r}; choose one of: {usable}.{hint}"
            )
        if value not in services.models.names:  # configured, but it failed to load
            try:
                services.models.get(value)
            except CharbotError as exc:
                raise InvalidSettingError(f"{exc} Choose one of: {usable}.") from None
        # A loaded model that is unreachable for a while (a model server that went away) stays
        # the channel's choice: its commands say so until it is back.
        return str(value)

    services.settings_registry.register_channel(
        MODEL_KEY, default=None, validate=validate_model, owner=__name__, fills=MODEL
    )
    services.commands.add(commands(services), owner=__name__)


def commands(services: Services) -> CommandGroup:
    name = Option(
        "name",
        str,
        "One of the models the bot serves",
        suggest=lambda: usable_models(services),
        label="model name",
    )
    return CommandGroup(
        "model",
        "The model that writes in this channel.",
        (
            Command("show", "Show the model in use in this channel.", show_model),
            Command(
                "use",
                "Pick the model for this channel.",
                use_model,
                options=(name,),
                manage_channels=True,
            ),
        ),
    )


async def setup(bot: CharBot) -> None:
    register(bot.services)


async def teardown(bot: CharBot) -> None:
    bot.settings_registry.unregister_owner(__name__)
