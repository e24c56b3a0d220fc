"""`CharRate`: the one rule every backend reports its characters per second by."""

from __future__ import annotations

from bot.generation.backend import CharRate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_counts_the_window_and_a_new_counter_is_not_shown_as_slow() -> None:
    clock = Clock()
    rate = CharRate(window=10.0, clock=clock)
    assert rate.per_second() == 0.0
    clock.now += 2.0
    rate.add(40)
    assert rate.per_second() == 20.0  # 40 characters in the 2 s since it started
    clock.now += 8.0
    rate.add(60)
    assert rate.per_second() == 10.0  # 100 in the full 10 s window
    clock.now += 5.0
    assert rate.per_second() == 6.0  # the first 40 have left the window
    clock.now += 20.0
    assert (rate.per_second(), rate.total) == (0.0, 100)
