"""bench.workspaces' core on a small scale: three workspaces, one `lexi-bot run` replica, SQLite."""

from __future__ import annotations

from bench.workspaces import Options, run


def test_three_workspaces_are_announced_once_each_in_their_own_channel() -> None:
    """Every task is announced in its own workspace's channel with its own token, once, and no budget is overrun."""
    result = run(
        Options(
            workspaces=3,
            replicas=1,
            database_url="",
            minutes=0.2,
            poll_interval=2.0,
            intervals=(2.0, 3.0),
            tasks_per_workspace=2,
        )
    )
    assert len(result.tasks) == 6
    assert result.missing == []
    assert result.duplicates == []
    assert result.leaks == []
    assert result.budget_over == [] and result.limited == 0
    assert result.errors == []
