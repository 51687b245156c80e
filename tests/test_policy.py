"""The policy file: what it means, and one clear error naming the line for anything it should not say."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from bot.core.policy import (
    CHANNEL_MEMBERS,
    DailyDigest,
    PolicyError,
    describe,
    from_settings,
    load_policy,
    parse_duration,
)
from bot.lexi.models import Task

FULL = """\
auto_approve_daily_cap: 20
defaults:
  approvers: [UALICE, S0LEADS]
  remind_after: 4h
types:
  prospect_search:
    auto_approve:
      name: small-searches
      max_count: 50
  campaign_start:
    channel: C0CAMPAIGNS
    approvers: [S0LEADS]
    dismissers: [channel_members]
    quorum:
      - above: 500
        approvals: 2
    confirm_above: 100
    expire_after: 2d
    dismiss_on_expiry: true
  list_operation:
    auto_approve: {name: list-ops}
"""


def _write(tmp_path: Path, text: str) -> Path:
    """Write a policy file."""
    path = tmp_path / "lexi-bot.yml"
    path.write_text(text)
    return path


def test_full_policy_is_understood(tmp_path: Path) -> None:
    """Every key of a complete file lands where it belongs, with defaults inherited per type."""
    policy = load_policy(_write(tmp_path, FULL), channel="C0LEXI")
    assert policy.auto_approve_daily_cap == 20
    search = policy.for_type("prospect_search")
    assert search.channel == "C0LEXI" and search.approvers == ("UALICE", "S0LEADS")
    assert search.remind_after == 4 * 3600
    assert search.auto_approves(50) and not search.auto_approves(51) and not search.auto_approves(None)
    campaign = policy.for_type("campaign_start")
    assert campaign.channel == "C0CAMPAIGNS" and campaign.approvers == ("S0LEADS",)
    assert campaign.may_dismiss() == (CHANNEL_MEMBERS,)
    assert campaign.approvals_needed(500) == 1 and campaign.approvals_needed(501) == 2
    assert campaign.approvals_needed(None) == 2  # an unknown size needs the strictest quorum
    assert campaign.expire_after == 2 * 86_400 and campaign.dismiss_on_expiry
    assert campaign.auto_approve is None
    assert policy.for_type("list_operation").auto_approves(None)
    assert policy.for_type("meeting_booking") == policy.default
    assert policy.channels() == {"C0LEXI", "C0CAMPAIGNS"}


def test_confirmation_size_is_the_task_types(tmp_path: Path) -> None:
    """A task's confirmation size (what cards and lists confirm above) is its type's; None where none is set."""
    policy = load_policy(_write(tmp_path, FULL), channel="C0LEXI")
    assert policy.confirm_above(Task(id="1", type="campaign_start")) == 100
    assert policy.confirm_above(Task(id="2", type="prospect_search")) is None


def test_environment_alone_gives_a_simple_policy() -> None:
    """Without a file, SLACK_CHANNEL and LEXI_APPROVERS make the whole policy."""
    policy = from_settings("C0LEXI", ("UALICE",))
    assert policy.for_type("campaign_start").approvers == ("UALICE",)
    assert policy.for_type("campaign_start").approvals_needed(10_000) == 1


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (
            "types:\n  campaign_start:\n    quorom: 2\n",
            3,
            "unknown key 'quorom' in types.campaign_start (did you mean 'quorum'?)",
        ),
        (
            "types:\n  campaign_starts:\n    quorum: 2\n",
            2,
            "unknown task type 'campaign_starts' (did you mean 'campaign_start'?)",
        ),
        ("types:\n  prospect_search:\n    channel: '#sales'\n", 3, "must be a channel ID"),
        ("defaults:\n  approvers: [alice]\n", 2, "'alice' in defaults.approvers is not a user ID"),
        ("defaults:\n  remind_after: soon\n", 2, "duration such as 30m"),
        ("defaults:\n  quorum: 0\n", 2, "at least 1"),
        ("types:\n  list_operation:\n    auto_approve: {max_count: 5}\n", 3, "needs a 'name'"),
        ("types:\n  campaign_start:\n    auto_approve: {name: all}\n", 3, "campaign starts, which email real people"),
        ("defaults:\n  auto_approve: {name: all}\n", 2, "allow_campaign_starts"),
        ("defaults: [1, 2]\n", 1, "must be a mapping"),
        ("defaults:\n  quorum: 2\n  quorum: 3\n", 3, "appears twice"),
        ("colour: blue\n", 1, "unknown key 'colour' in the file"),
        ("defaults:\n  quorum: [{above: 5}]\n", 2, "needs both 'above' and 'approvals'"),
        ("defaults: {approvers: [UALICE\n", 2, "not valid YAML"),
        ("defaults:\n  approvers: []\n", 2, "defaults.approvers is an empty list"),
        ("types:\n  campaign_start:\n    dismissers: []\n", 3, "types.campaign_start.dismissers is an empty list"),
        ("defaults:\n  notify: dm\n", 2, "defaults.notify must be one of channel, approvers, both, not 'dm'"),
        ("types:\n  campaign_start:\n    notify: approver\n", 3, "not 'approver' (did you mean 'approvers'?)"),
        ("defaults:\n  notify: [channel, approvers]\n", 2, "expected one of channel, approvers, both"),
        (
            "defaults:\n  digest: 9am\n",
            2,
            'defaults.digest must be a time and a time zone such as "09:00 Europe/Berlin"',
        ),
        ("defaults:\n  digest: '09:00'\n", 2, "defaults.digest must be a time and a time zone"),
        ("defaults:\n  digest: 24:00 Europe/Berlin\n", 2, "'24:00' is not a time of day (00:00 to 23:59)"),
        ("defaults:\n  digest: 09:75 UTC\n", 2, "'09:75' is not a time of day"),
        (
            "\ndefaults:\n  digest: 09:00 Europe/Berln\n",
            3,
            "unknown time zone 'Europe/Berln' (did you mean 'Europe/Berlin'?)",
        ),
        ("defaults:\n  digest: 09:00 Mars/Olympus\n", 2, "unknown time zone 'Mars/Olympus'"),
        (
            "defaults:\n  digest: 09:00 UTC\n  digest_to: approver\n",
            3,
            "must be channel or approvers, not 'approver' (did you mean 'approvers'?)",
        ),
        ("defaults:\n  digest_to: approvers\n", 2, "defaults.digest_to needs defaults.digest"),
        (
            "types:\n  campaign_start:\n    digest: 09:00 UTC\n",
            3,
            "types.campaign_start.digest: the digest is set in defaults only",
        ),
    ],
)
def test_mistakes_are_one_error_naming_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    """Each mistake is refused with the file, the line and what is wrong."""
    with pytest.raises(PolicyError) as caught:
        load_policy(_write(tmp_path, text), channel="C0LEXI")
    message = str(caught.value)
    assert message.startswith(f"lexi-bot.yml line {line}:"), message
    assert words in message


def test_campaign_auto_approval_needs_explicit_consent(tmp_path: Path) -> None:
    """Campaign starts are auto-approved only with allow_campaign_starts: true."""
    text = "types:\n  campaign_start:\n    auto_approve: {name: tiny, max_count: 5, allow_campaign_starts: true}\n"
    policy = load_policy(_write(tmp_path, text), channel="C0LEXI")
    assert policy.for_type("campaign_start").auto_approves(5)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """A policy file that does not exist is named in the error."""
    with pytest.raises(PolicyError, match=r"cannot read the policy file .*nope.yml"):
        load_policy(tmp_path / "nope.yml", channel="C0LEXI")


def test_empty_file_keeps_the_environment_defaults(tmp_path: Path) -> None:
    """An empty policy file changes nothing."""
    policy = load_policy(_write(tmp_path, ""), channel="C0LEXI", approvers=("UBOB",))
    assert policy.default.approvers == ("UBOB",) and policy.types == {}


def test_no_approvers_means_the_channels_members(tmp_path: Path) -> None:
    """Without approvers in the environment or the file, each type is decided by its channel's members."""
    policy = load_policy(_write(tmp_path, "types:\n  campaign_start:\n    channel: C0CAMPAIGNS\n"), channel="C0LEXI")
    text = "\n".join(describe(policy))
    assert "campaign_start: announced in C0CAMPAIGNS; approved by members of C0CAMPAIGNS" in text
    assert "other types: announced in C0LEXI; approved by members of C0LEXI" in text
    assert "anyone" not in text


def test_describe_says_what_happens_per_type(tmp_path: Path) -> None:
    """`policy check` prints, for each task type, where it goes and what rules apply."""
    lines = describe(load_policy(_write(tmp_path, FULL), channel="C0LEXI"))
    text = "\n".join(lines)
    assert "campaign_start: announced in C0CAMPAIGNS; approved by S0LEADS" in text
    assert "2 distinct approvals needed above 500" in text
    assert "auto-approved up to 50 by rule 'small-searches'" in text
    assert "dismissed in LeadLex after 2d" in text
    assert "other types: announced in C0LEXI" in text


def test_notify_is_channel_unless_said_per_type_or_in_defaults(tmp_path: Path) -> None:
    """`notify` defaults to the channel; `defaults` sets it for every type, and a type's own section overrides it."""
    assert from_settings("C0LEXI", ("UBOB",)).default.notify == "channel"
    text = "defaults:\n  notify: approvers\ntypes:\n  campaign_start:\n    notify: both\n"
    policy = load_policy(_write(tmp_path, text), channel="C0LEXI", approvers=("UBOB",))
    assert policy.for_type("prospect_search").notify == "approvers"
    assert policy.for_type("campaign_start").notify == "both" and policy.for_type("campaign_start").to_approvers
    assert not load_policy(_write(tmp_path, "defaults:\n  notify: channel\n"), channel="C0LEXI").default.to_approvers
    lines = "\n".join(describe(policy))
    assert "campaign_start: announced in C0LEXI and sent to each approver's DM; approved by UBOB" in lines
    assert "prospect_search: sent to each approver's DM (in C0LEXI when none is named)" in lines


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("30m", 1800), ("4h", 14_400), ("2d", 172_800), ("1.5h", 5400), ("soon", None), ("-1h", None)],
)
def test_durations(text: str, seconds: float | None) -> None:
    """Durations are seconds, minutes, hours or days."""
    assert parse_duration(text) == seconds


def test_policy_check_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lexi-bot policy check FILE` prints what happens per type, or exits 2 with the line of the mistake."""
    from bot.cli import main

    monkeypatch.setenv("LEXI_ENV_FILE", "/nonexistent/.env")
    monkeypatch.setenv("SLACK_CHANNEL", "C0LEXI")
    assert main(["policy", "check", str(_write(tmp_path, FULL))]) == 0
    assert "campaign_start: announced in C0CAMPAIGNS" in capsys.readouterr().out
    bad = tmp_path / "bad.yml"
    bad.write_text("types:\n  prospect_search:\n    approvers: [bob]\n")
    assert main(["policy", "check", str(bad)]) == 2
    assert "bad.yml line 3: 'bob'" in capsys.readouterr().err


def test_the_readme_example_policy_is_valid(tmp_path: Path) -> None:
    """The policy file shown in the README loads and means what its comments say."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    policy = load_policy(_write(tmp_path, example), channel="C0LEXI")
    campaign = policy.for_type("campaign_start")
    assert campaign.channel == "C0CAMPAIGNS" and campaign.approvals_needed(501) == 2
    assert policy.for_type("prospect_search").auto_approves(50)
    assert policy.default.remind_after == 4 * 3600 and policy.auto_approve_daily_cap == 20


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (2, "2s"),
        (45, "45s"),
        (60, "1m"),
        (90, "90s"),
        (1800, "30m"),
        (5400, "1.5h"),
        (14_400, "4h"),
        (172_800, "2d"),
        (129_600, "1.5d"),
        (95_400, "26.5h"),
        (3_630, "3630s"),
        (0.5, "0.5s"),
        (14_412.3, "4h"),
        (61.7, "1m"),
    ],
)
def test_durations_read_as_people_write_them(seconds: float, text: str) -> None:
    """The largest unit that writes a duration exactly (one decimal for hours and days); else rounded to it."""
    from bot.core.policy import human_duration

    assert human_duration(seconds) == text


@pytest.mark.parametrize("given", ["2s", "45s", "90s", "1m", "30m", "1.5h", "4h", "26.5h", "2d", "1.5d"])
def test_durations_are_shown_as_given(given: str) -> None:
    """Every duration a policy file may say is displayed back exactly as written."""
    from bot.core.policy import human_duration

    seconds = parse_duration(given)
    assert seconds is not None and human_duration(seconds) == given


def test_policy_check_shows_durations_under_a_minute(tmp_path: Path) -> None:
    """`remind_after: 2s` is described as 2s, not rounded up to a minute."""
    policy = load_policy(_write(tmp_path, "defaults:\n  remind_after: 2s\n  expire_after: 45s\n"), channel="C0LEXI")
    text = "\n".join(describe(policy))
    assert "reminders from 2s (at most 3)" in text and "marked expired after 45s" in text
    assert "1m" not in text


def test_every_mistake_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    """A file with several mistakes is refused with all of them, each naming its line, in the order of the file."""
    text = (
        "colour: blue\n"  # 1: unknown top-level key
        "defaults:\n"
        "  approvers: [alice, UBOB, bob]\n"  # 3: two bad approvers on one line
        "  remind_after: soon\n"  # 4: not a duration
        "types:\n"
        "  campaign_starts: {quorum: 2}\n"  # 6: unknown type
        "  list_operation:\n"
        "    quorom: 2\n"  # 8: unknown key
        "    confirm_above: lots\n"  # 9: not a number
        "auto_approve_daily_cap: many\n"  # 10: not a number
    )
    with pytest.raises(PolicyError) as caught:
        load_policy(_write(tmp_path, text), channel="C0LEXI")
    problems = caught.value.problems
    lines = [int(p.split(" line ", 1)[1].split(":", 1)[0]) for p in problems]
    assert lines == [1, 3, 3, 4, 6, 8, 9, 10], problems
    assert all(p.startswith("lexi-bot.yml line ") for p in problems)
    assert "'alice' in defaults.approvers" in problems[1] and "'bob' in defaults.approvers" in problems[2]
    assert str(caught.value).splitlines() == [
        "8 problems in the policy file — fix them all:",
        *(f"  - {p}" for p in problems),
    ]


def test_the_digest_is_a_time_and_a_zone_in_the_defaults(tmp_path: Path) -> None:
    """`digest: 09:00 Europe/Berlin` (quoted or not) with `digest_to: approvers` is read, and described."""
    text = "defaults:\n  digest: 09:00 Europe/Berlin\n  digest_to: approvers\n"
    policy = load_policy(_write(tmp_path, text), channel="C0LEXI")
    assert policy.default.digest == DailyDigest(time(9, 0), "Europe/Berlin")
    assert policy.default.digest_to == "approvers"
    assert "digest of the tasks still waiting goes to each approver by DM daily at 09:00 Europe/Berlin" in "\n".join(
        describe(policy)
    )
    quoted = load_policy(_write(tmp_path, 'defaults:\n  digest: "7:05 UTC"\n'), channel="C0LEXI")
    assert quoted.default.digest == DailyDigest(time(7, 5), "UTC") and quoted.default.digest_to == "channel"
    off = load_policy(_write(tmp_path, "defaults:\n  digest: off\n"), channel="C0LEXI")
    assert off.default.digest is None and from_settings("C0LEXI", ()).default.digest is None


def test_every_digest_mistake_is_reported_at_once(tmp_path: Path) -> None:
    """A bad time and a bad target in one file are two problems, each with its line."""
    text = "defaults:\n  digest: 25:00 Europe/Paris\n  digest_to: everyone\n"
    with pytest.raises(PolicyError) as caught:
        load_policy(_write(tmp_path, text), channel="C0LEXI")
    assert [problem.split(":")[0] for problem in caught.value.problems] == [
        "lexi-bot.yml line 2",
        "lexi-bot.yml line 3",
    ]
