"""The benchmarks' own options: nonsense is a usage error at once, never a traceback after minutes of setup."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from bench import memory, minimal_bot, side_by_side

Main = Callable[[Sequence[str] | None], int]


@pytest.mark.parametrize(
    ("main", "argv", "said"),
    [
        (memory.main, ["--rate", "0"], "--rate: must be above zero, not '0'"),
        (memory.main, ["--rate", "-2"], "--rate: must be above zero, not '-2'"),
        (side_by_side.main, ["--interleave", "0"], "--interleave: must be above zero, not '0'"),
        (
            minimal_bot.main,
            ["--port", "1", "--driver-sql"],
            "--driver-sql says how to write the click: it needs --record",
        ),
    ],
)
def test_nonsense_options_are_refused_before_anything_runs(
    main: Main, argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit status 2 (argparse's usage error) with the reason; no bot, database or stand-in is started."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert said in capsys.readouterr().err
