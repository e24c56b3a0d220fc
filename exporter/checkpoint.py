"""Self-describing training checkpoints: `DIR/last.pt` (to resume) and `DIR/best.pt` (to export).

A checkpoint is a plain dict that `torch.load(weights_only=True)` reads: tensors, dicts, lists,
strings, numbers, booleans and None only (random-number states are stored as tensors). Keys:

    charbot_checkpoint  format version (int); a file without this key is not ours
    kind                "last" (resumable: has optimizer, rng, data) or "best" (weights only)
    model               the CharRNN state_dict
    model_config        CharRNNConfig as a dict
    tokenizer           Tokenizer.to_json()
    train_config        TrainConfig as a dict (resolved: every option, defaults included)
    step, elapsed       optimiser steps done and training seconds spent so far
    best_val_loss       lowest periodic validation loss so far (nats per token), or None
    val_loss            the final, full validation loss of these weights, or None
    corpus              provenance: corpus names, sha256, characters (Corpus.provenance())
    command             the command line that started the run
    precision           what the training steps ran in: "bf16" (autocast) or "fp32"; the weights
                        are fp32 either way (exporter.precision); absent in older checkpoints
    history             {"train_loss": [per step], "val": [[step, loss], ...]}
    optimizer, rng, data, carried_state, best_step   (last.pt only) what an exact resume needs

`Checkpoint` (a TypedDict) types the same keys for its writers and readers.
"""

from __future__ import annotations

import logging
import os
import pickle
import random
import warnings
import zipfile
from pathlib import Path
from typing import Any, Final, Literal, NotRequired, TypedDict, cast

import torch

from exporter.errors import CheckpointError
from models.charrnn import CharRNN, CharRNNConfig
from models.tokenizers import Tokenizer, TokenizerError, tokenizer_from_json

log = logging.getLogger(__name__)

FORMAT_KEY: Final = "charbot_checkpoint"
FORMAT_VERSION: Final = 1

CheckpointKind = Literal["last", "best"]


class PythonRngState(TypedDict):
    """`random.getstate()` with its internal tuple stored as a tensor."""

    version: int
    state: torch.Tensor
    gauss: float | None


class RngState(TypedDict):
    torch: torch.Tensor
    cuda: list[torch.Tensor]  # one per GPU; empty when training on the CPU
    python: PythonRngState


class History(TypedDict):
    train_loss: list[float]  # one per step
    val: list[list[float]]  # [step, loss] pairs


class Checkpoint(TypedDict):
    """What `torch.save` writes (see the module docstring). The keys that `load_checkpoint`
    insists on are required here; the others are written by every run of this trainer, and
    readers of older or hand-made files go through `.get`."""

    charbot_checkpoint: NotRequired[int]  # FORMAT_KEY: added by save_checkpoint
    kind: CheckpointKind
    model: dict[str, torch.Tensor]
    model_config: dict[str, Any]  # CharRNNConfig.to_dict()
    tokenizer: dict[str, Any]  # Tokenizer.to_json()
    train_config: dict[str, Any]  # TrainConfig.to_dict(), resolved
    step: int
    corpus: dict[str, Any]  # Corpus.provenance()
    elapsed: NotRequired[float]
    best_val_loss: NotRequired[float | None]
    val_loss: NotRequired[float | None]
    command: NotRequired[str]
    precision: NotRequired[str]  # "bf16" or "fp32": the autocast of the latest steps
    history: NotRequired[History]
    # last.pt only: what an exact resume needs.
    optimizer: NotRequired[dict[str, Any]]
    rng: NotRequired[RngState]
    data: NotRequired[dict[str, Any]]  # the batch sampler's state_dict()
    carried_state: NotRequired[torch.Tensor | None]
    best_step: NotRequired[int | None]


#: Checkpoint's required keys, which `load_checkpoint` insists on. (Under postponed annotations
#: Python 3.11's `Checkpoint.__required_keys__` does not see `NotRequired`, so they are listed.)
REQUIRED_KEYS: Final = (
    "kind",
    "model",
    "model_config",
    "tokenizer",
    "train_config",
    "step",
    "corpus",
)


def rng_state(cuda: bool) -> RngState:
    """The random-number states training uses, as tensors and ints (weights_only-loadable).

    Training draws from torch (initialisation, dropout; on `cuda`, the GPU's generators too) and,
    in principle, Python's `random`; it does not use numpy.
    """
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if cuda else [],
        "python": {
            "version": version,
            "state": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss,
        },
    }


def set_rng_state(state: RngState) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))


def save_checkpoint(checkpoint: Checkpoint, path: Path) -> None:
    """Write atomically (temp file, then rename), so a crash mid-write keeps the old file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save({**checkpoint, FORMAT_KEY: FORMAT_VERSION}, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from exc
    log.debug("saved %s (step %d)", path, checkpoint["step"])


def load_checkpoint(path: Path) -> Checkpoint:
    """Read and check a checkpoint; anything that is not one of ours is a CheckpointError."""
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, not a file")
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols in foreign files; the error below says enough.
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from exc
    except (
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        RuntimeError,
        EOFError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
    ) as exc:
        # Random bytes and truncated files fail in any of these ways inside torch.load.
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (it is corrupt or another kind of file)"
        ) from exc
    if not isinstance(data, dict) or FORMAT_KEY not in data:
        raise CheckpointError(
            f"{path} is a PyTorch file but not a charbot checkpoint (it has no {FORMAT_KEY!r} key)"
        )
    version = data[FORMAT_KEY]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {version!r} but this exporter reads format "
            f"{FORMAT_VERSION} at most; update charbot"
        )
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise CheckpointError(f"checkpoint {path} is damaged: it lacks {', '.join(missing)}")
    return cast(Checkpoint, data)


def build_tokenizer(checkpoint: Checkpoint, path: Path) -> Tokenizer:
    try:
        return tokenizer_from_json(checkpoint["tokenizer"])
    except TokenizerError as exc:
        raise CheckpointError(f"checkpoint {path} has an unusable tokenizer: {exc}") from exc


def build_model(checkpoint: Checkpoint, path: Path) -> CharRNN:
    """The checkpoint's CharRNN with its weights loaded, on the CPU, in eval mode."""
    try:
        model = CharRNN(CharRNNConfig(**checkpoint["model_config"]))
        model.load_state_dict(checkpoint["model"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path} has weights that do not fit its model") from exc
    return model.eval()


def own_val_loss(checkpoint: Checkpoint) -> float | None:
    """The validation loss of the weights this checkpoint holds, or None when they were never
    validated (a last.pt saved between validations: best_val_loss is then another step's)."""
    val_loss = checkpoint.get("val_loss")  # on the whole validation text, at the end
    if val_loss is not None:
        return float(val_loss)
    if checkpoint["kind"] == "best":  # best.pt holds the weights that scored best_val_loss
        best = checkpoint.get("best_val_loss")
        return None if best is None else float(best)
    history = checkpoint.get("history")
    validations = history["val"] if history else []
    if validations and validations[-1][0] == checkpoint["step"]:  # saved right after one
        return float(validations[-1][1])
    return None


def training_metadata(checkpoint: Checkpoint) -> dict[str, Any]:
    """The `charbot.training` metadata of a model exported from this checkpoint."""
    config = checkpoint["train_config"]
    val_loss = own_val_loss(checkpoint)
    corpus = dict(checkpoint["corpus"])
    # File names, digests and sizes travel with the model; this machine's directories do not.
    corpus["files"] = [
        {key: f[key] for key in ("name", "sha256", "characters")} for f in corpus.get("files", [])
    ]
    return {
        **corpus,
        "level": config.get("level"),
        "steps": checkpoint["step"],
        "seconds": round(float(checkpoint.get("elapsed", 0.0)), 1),
        "tokens": checkpoint["step"] * config.get("batch_size", 0) * config.get("seq_len", 0),
        "best_val_loss": val_loss,
        "val_loss_unit": "nats per token",
        "val_fraction": config.get("val_fraction"),
        "precision": checkpoint.get("precision"),
        "command": checkpoint.get("command", ""),
    }
