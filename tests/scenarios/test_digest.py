"""Issue 16: the daily digest of waiting tasks, at the policy's time in its zone (with a clock the tests move)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.digest import Digest
from bot.core.tasks import TaskLookup
from bot.db.store import Store
from bot.dev.sandbox import Sandbox
from bot.dev.standin.records import Message
from bot.dev.standin.slack import SlackStandIn
from tests.support.harness import CHANNEL, BotHarness, start_bot
from tests.support.installer import start_installer

CHANNEL_POLICY = """\
defaults:
  approvers: [UALICE]
  digest: 09:00 Europe/Berlin
"""
APPROVERS_POLICY = """\
defaults:
  approvers: [UALICE]
  digest: "09:00 Europe/Berlin"
  digest_to: approvers
types:
  campaign_start:
    approvers: [S0LEADS]
"""
#: 09:00 in Berlin on Monday 7 December 2026 (winter time: UTC+1).
NINE = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)

#: Starts a bot with a policy and a digest clock standing at a moment; `close` stops every bot it started.
Starter = Callable[[str, datetime], tuple[BotHarness, list[datetime]]]


@pytest.fixture
def start(sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path) -> Iterator[Starter]:
    """Start bots (on one database) whose digest clock the test moves; each is stopped at the end."""
    started: list[BotHarness] = []

    def run(policy: str, at: datetime) -> tuple[BotHarness, list[datetime]]:
        """A bot with `policy` whose digest clock stands at `at` (the list's one item; the test moves it)."""
        path = tmp_path / "lexi-bot.yml"
        path.write_text(policy)
        bot = start_bot(sandbox, slack, database_url, LEXI_POLICY_FILE=str(path))
        started.append(bot)
        now = [at]
        assert bot.runtime.poller.digest is not None
        bot.runtime.poller.digest.now = lambda: now[0]
        return bot, now

    try:
        yield run
    finally:
        for bot in started:
            bot.close()


def _digests(slack: SlackStandIn, channel: str = CHANNEL) -> list[Message]:
    """The digest messages posted to a channel (or a DM)."""
    return [m for m in slack.messages(channel) if m.text.startswith("*Daily digest")]


def _link(bot: BotHarness, task_id: str) -> str:
    """The permalink of a task's card, as the stand-in writes it."""
    row = bot.store.get(task_id)
    assert row is not None and row.message_ts is not None
    return f"/archives/{row.channel}/p{row.message_ts.replace('.', '')}|"


def test_before_nine_nothing_is_sent_and_at_nine_one_digest_lists_the_waiting_tasks(
    start: Starter, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """At 08:59 Berlin no digest; at 09:00 one message counts the two waiting tasks, each linked to its card."""
    bot, now = start(CHANNEL_POLICY, NINE - timedelta(minutes=1))
    search = sandbox.add_task("prospect_search", "Find CFOs <!channel> & VPs")["id"]
    merge = sandbox.add_task("list_operation", "Merge lists", {"record_count": 10})["id"]
    bot.poll()
    assert _digests(slack) == []
    now[0] = NINE
    bot.poll()
    [digest] = _digests(slack)
    lines = digest.text.split("\n")
    assert lines[0] == "*Daily digest: 2 tasks still wait for a decision*"
    assert len(lines) == 3 and _link(bot, search) in lines[1] and _link(bot, merge) in lines[2]  # oldest first
    assert "Find CFOs &lt;!channel&gt; &amp; VPs" in lines[1] and "<!channel>" not in digest.text
    assert "Merge lists" in lines[2]


def test_twice_at_nine_one_and_after_a_restart_still_one_digest(
    start: Starter, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Polls at 09:01 and 09:02, and a restarted bot at 09:05, make one digest: the day is recorded in the database."""
    bot, now = start(CHANNEL_POLICY, NINE - timedelta(hours=1))
    sandbox.add_task("prospect_search", "Find CFOs")
    bot.poll()
    now[0] = NINE + timedelta(minutes=1)
    bot.poll()
    now[0] += timedelta(minutes=1)
    bot.poll()
    assert len(_digests(slack)) == 1
    bot.close()
    again, _ = start(CHANNEL_POLICY, NINE + timedelta(minutes=5))
    again.poll()
    assert len(_digests(slack)) == 1
    assert [e["detail"] for e in again.store.audit_events() if e["event"] == "digest"] == [
        "2026-12-07 to channel: 1 message"
    ]


def test_a_bot_down_at_nine_sends_the_digest_late_but_skips_a_day_missed_by_six_hours(
    start: Starter, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Started at 09:20 the bot sends that day's digest; started at 15:01 it skips the day and sends the next one."""
    bot, now = start(CHANNEL_POLICY, NINE + timedelta(hours=6, minutes=1))
    sandbox.add_task("prospect_search", "Find CFOs")
    bot.poll()
    bot.poll()
    assert _digests(slack) == []  # 7 December is skipped: more than six hours late
    now[0] = NINE + DAY + timedelta(minutes=20)
    bot.poll()
    assert len(_digests(slack)) == 1  # 8 December's, twenty minutes late
    now[0] = NINE + 2 * DAY - timedelta(seconds=1)
    bot.poll()
    assert len(_digests(slack)) == 1


def test_nothing_waits_nothing_is_sent_and_the_day_is_done(
    start: Starter, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """With no waiting task no digest goes out; a task arriving at 10:00 waits for the next day's digest."""
    bot, now = start(CHANNEL_POLICY, NINE - timedelta(hours=1))
    decided = sandbox.add_task("contact_update", "Fix titles")["id"]
    bot.poll()
    sandbox.set_status(decided, "dismissed")
    bot.poll()
    assert bot.store.get(decided).state == "dismissed"  # type: ignore[union-attr]
    now[0] = NINE
    bot.poll()
    assert _digests(slack) == []
    assert [e["detail"] for e in bot.store.audit_events() if e["event"] == "digest"] == [
        "2026-12-07 to channel: 0 messages"
    ]
    now[0] = NINE + timedelta(hours=1)
    sandbox.add_task("prospect_search", "Find CFOs")
    bot.poll()
    assert _digests(slack) == []
    now[0] = NINE + DAY
    bot.poll()
    [digest] = _digests(slack)
    assert digest.text.startswith("*Daily digest: 1 task still waits for a decision*\n• <")


def test_to_approvers_each_dm_lists_only_the_tasks_that_person_may_decide(
    start: Starter, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """To approvers: Alice's DM lists the search, the S0LEADS members' the campaign; Dave and the channel get none."""
    slack.set_usergroup("S0LEADS", ["UBOB", "UCAROL"])
    bot, _ = start(APPROVERS_POLICY, NINE - timedelta(hours=1))
    search = sandbox.add_task("prospect_search", "Find CFOs")["id"]
    campaign = sandbox.add_task("campaign_start", "Start 'Q1'", {"contact_count": 50})["id"]
    bot.poll()
    assert bot.runtime.poller.digest is not None
    bot.runtime.poller.digest.now = lambda: NINE
    bot.poll()
    dms = {user: _digests(slack, slack.open_dm(user)) for user in ("UALICE", "UBOB", "UCAROL", "UDAVE")}
    [alice] = dms["UALICE"]
    assert alice.text.startswith("*Daily digest: 1 task still waits") and _link(bot, search) in alice.text
    assert _link(bot, campaign) not in alice.text
    for user in ("UBOB", "UCAROL"):
        [theirs] = dms[user]
        assert _link(bot, campaign) in theirs.text and _link(bot, search) not in theirs.text
    assert dms["UDAVE"] == [] and _digests(slack) == []


def test_two_replicas_on_one_database_send_one_digest(
    start: Starter, sandbox: Sandbox, slack: SlackStandIn, database_url: str
) -> None:
    """Two Digest instances, each with its own connections to the database, run at once: one claims and sends."""
    bot, _ = start(CHANNEL_POLICY, NINE - timedelta(hours=1))
    sandbox.add_task("prospect_search", "Find CFOs")
    bot.poll()
    runtime = bot.runtime
    other = Store.from_url(database_url)
    try:
        replicas = [
            Digest(
                runtime.policy,
                store,
                runtime.messenger,
                runtime.decider,
                TaskLookup(store, runtime.lexi),
                now=lambda: NINE,
            )
            for store in (runtime.store, other)
        ]
        barrier = threading.Barrier(len(replicas))
        sent: list[int] = []

        def replica(digest: Digest) -> None:
            """Run one replica's digest as its poll cycle would, both at the same moment."""
            barrier.wait(timeout=10)
            sent.append(digest.run())

        threads = [threading.Thread(target=replica, args=(digest,)) for digest in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert sorted(sent) == [0, 1]
        assert len(_digests(slack)) == 1
    finally:
        other.close()


def test_each_workspace_gets_its_own_digest_in_multi_workspace_mode(
    slack: SlackStandIn, sandbox: Sandbox, database_url: str
) -> None:
    """Two workspaces with a 09:00 digest each get one, in their own channel, of their own waiting tasks only."""
    for running in start_installer(slack, database_url, serve_tenants=True):
        registry, tenants = running.registry, running.tenants
        assert registry is not None and tenants is not None
        lexi = {}
        for team, task in (("TAAA", "Find CFOs for A"), ("TBBB", "Find CTOs for B")):
            assert running.install(team=team).status_code == 302
            lexi[team] = sandbox.add_workspace()
            registry.connect_lexi(team, str(lexi[team].api_key), sandbox.url)
            registry.configure(team, channel=CHANNEL, policy_yaml=CHANNEL_POLICY)
            lexi[team].add_task(description=task)
        for moment in (NINE - timedelta(hours=1), NINE, NINE + timedelta(minutes=1)):
            for team in lexi:
                runtime = tenants.get(team)
                assert runtime is not None and runtime.poller.digest is not None
                runtime.poller.digest.now = lambda moment=moment: moment
                tenants.poll(registry.require(team))
                assert runtime.drain(10), "the workspace's work did not settle in time"
        for team, mine, theirs in (("TAAA", "for A", "for B"), ("TBBB", "for B", "for A")):
            workspace = slack.oauth.teams[team].workspace
            [digest] = [m for m in workspace.messages(CHANNEL) if m.text.startswith("*Daily digest")]
            assert digest.text.startswith("*Daily digest: 1 task still waits") and mine in digest.text
            assert theirs not in digest.text
