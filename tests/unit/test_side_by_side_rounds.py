"""The interleaved side by side: rounds taken in turn, and each round compared with its neighbour's."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from bench.side_by_side import Batch, round_ratios, run_interleaved


def test_rounds_are_taken_in_turn_with_the_order_rotating() -> None:
    """Every bot runs at once; round r starts with a different bot, so none always follows the same one."""
    played: list[str] = []
    exited: list[str] = []

    @contextlib.contextmanager
    def contender(label: str) -> Iterator[Callable[[], Batch]]:
        def play() -> Batch:
            played.append(label)
            return Batch(label, acks=[len(played) / 1000])

        try:
            yield play
        finally:
            exited.append(label)

    groups = run_interleaved([contender("a"), contender("b"), contender("c")], rounds=3)
    assert played == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {label: [b.acks[0] * 1000 for b in batches] for label, batches in groups.items()} == {
        "a": [1, 6, 8],
        "b": [2, 4, 9],
        "c": [3, 5, 7],
    }
    assert sorted(exited) == ["a", "b", "c"]  # every bot is stopped after the last round


def test_each_round_is_compared_with_the_reference_round_of_the_same_turn() -> None:
    """The median of per-round ratios, with the lowest and highest: a noisy round moves the spread, not the median."""
    reference = [Batch("min", acks=[0.010] * 100, to_call=[0.020] * 100) for _ in range(3)]
    ack_scale, call_scale = (1.0, 2.0, 10.0), (1.5, 1.5, 3.0)
    bot = [
        Batch("bot", acks=[0.010 * a] * 100, to_call=[0.020 * c] * 100)
        for a, c in zip(ack_scale, call_scale, strict=True)
    ]
    [row] = round_ratios({"min": reference, "bot": bot}, "min")
    assert row == ["bot", 3, "2.00× (1.00–10.00)", "1.50× (1.50–3.00)"]
