from __future__ import annotations

import numpy as np
import pytest

from bot.generation.params import GenerationParams
from bot.generation.sampling import BatchSampler, draw, sample_one, sample_temperature

DRAWS = 3000

# Logits over 8 tokens: clear winners 3 > 6 > 1 > 0, and the rest.
LOGITS = np.array([1.0, 1.5, -1.0, 3.0, -2.0, 0.0, 2.0, -0.5], dtype=np.float32)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    out: np.ndarray = e / e.sum()
    return out


def draws(temperature: float, top_k: int, top_p: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([sample_one(LOGITS, temperature, top_k, top_p, rng) for _ in range(DRAWS)])


def test_greedy_is_argmax() -> None:
    rng = np.random.default_rng(0)
    assert sample_one(LOGITS, 0.0, 0, 1.0, rng) == 3
    assert sample_one(LOGITS, 0.0, 2, 0.5, rng) == 3
    batch = np.random.default_rng(1).normal(size=(5, 11)).astype(np.float32)
    sampler = BatchSampler([GenerationParams(temperature=0)] * 5, [rng] * 5)
    assert sampler(batch).tolist() == batch.argmax(axis=1).tolist()


@pytest.mark.parametrize("top_k", [1, 2, 3, 5])
def test_top_k_never_emits_a_filtered_token(top_k: int) -> None:
    allowed = set(np.argsort(-LOGITS)[:top_k].tolist())
    seen = set(draws(1.5, top_k, 1.0).tolist())
    assert seen == allowed  # never outside, and every allowed token does come up


@pytest.mark.parametrize(("top_p", "allowed"), [(0.01, {3}), (0.6, {3, 6}), (0.8, {3, 6, 1})])
def test_top_p_never_emits_a_filtered_token(top_p: float, allowed: set[int]) -> None:
    # At temperature 1 the probabilities are 0.55 (3), 0.20 (6), 0.12 (1), then 0.07 (0).
    assert softmax(LOGITS.astype(np.float64))[[3, 6, 1]].round(2).tolist() == [0.55, 0.2, 0.12]
    assert set(draws(1.0, 0, top_p).tolist()) == allowed


def test_top_k_and_top_p_together() -> None:
    assert set(draws(2.0, 3, 0.5).tolist()) <= {3, 6, 1}


def test_sampling_follows_softmax() -> None:
    counts = np.bincount(draws(1.0, 0, 1.0), minlength=8) / DRAWS
    assert np.abs(counts - softmax(LOGITS.astype(np.float64))).max() < 0.03


def test_vectorised_temperature_matches_softmax_and_skips_banned() -> None:
    logits = np.tile(LOGITS, (DRAWS, 1))
    logits[:, 3] = -np.inf  # banned, as the batch masks the unknown token
    rngs = [np.random.default_rng(i) for i in range(DRAWS)]
    tokens = sample_temperature(logits, np.full((DRAWS, 1), 1 / 0.7, np.float32), rngs)
    assert 3 not in tokens.tolist()
    expected = softmax(np.where(np.arange(8) == 3, -np.inf, LOGITS / 0.7))
    assert np.abs(np.bincount(tokens, minlength=8) / DRAWS - expected).max() < 0.03


def test_a_seed_repeats() -> None:
    assert draws(1.0, 0, 0.9, seed=7).tolist() == draws(1.0, 0, 0.9, seed=7).tolist()
    assert draws(1.0, 0, 0.9, seed=7).tolist() != draws(1.0, 0, 0.9, seed=8).tolist()


def test_mixed_batch_keeps_each_rows_params_and_stream() -> None:
    params = [
        GenerationParams(temperature=0),
        GenerationParams(temperature=1.0, seed=1),
        GenerationParams(temperature=1.0, top_k=1, seed=2),
        GenerationParams(temperature=1.2, top_p=0.6, seed=3),
    ]
    sampler = BatchSampler(params, [np.random.default_rng(p.seed) for p in params])
    logits = np.tile(LOGITS, (4, 1))
    rows = np.array([sampler(logits).copy() for _ in range(500)])  # (draws, 4)
    assert set(rows[:, 0].tolist()) == {3}
    assert len(set(rows[:, 1].tolist())) > 3
    assert set(rows[:, 2].tolist()) == {3}
    assert set(rows[:, 3].tolist()) == {3, 6}
    # Row 1 alone, with the same seed, draws the same tokens as inside the mixed batch.
    alone = BatchSampler([params[1]], [np.random.default_rng(1)])
    assert [int(alone(logits[:1])[0]) for _ in range(500)] == rows[:, 1].tolist()


def test_draw_never_picks_zero_probability() -> None:
    cdf = np.cumsum([0.0, 0.5, 0.0, 0.5, 0.0])
    assert draw(cdf, 0.0) == 1
    assert draw(cdf, 0.5) == 3
    assert draw(cdf, 1.0) == 3  # u rounded up to the total: the last positive entry


def test_tiny_temperature_is_greedy_not_nan() -> None:
    rng = np.random.default_rng(0)
    assert sample_one(LOGITS, 1e-30, 0, 1.0, rng) == 3
    sampler = BatchSampler([GenerationParams(temperature=1e-30)], [rng])
    assert sampler(LOGITS[None]).tolist() == [3]
