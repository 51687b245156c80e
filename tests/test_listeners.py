"""The Bolt listeners called directly, as Bolt calls them: a recording `ack`, the body, and the runtime in context."""

from __future__ import annotations

from typing import Any

from slack_bolt import BoltContext

from bot.core.decisions import Check
from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.slack import blocks, replies
from bot.slack.listeners import RUNTIME
from bot.slack.listeners.actions import handle_approve, handle_dismiss
from bot.slack.listeners.slash_command import handle_lexi
from tests.support.harness import CHANNEL, BotHarness


class RecordingAck:
    """An `ack` that records each call's arguments, and what `seen` returned at that moment."""

    def __init__(self, seen: Any = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self._seen = seen

    def __call__(self, **kwargs: Any) -> None:
        """Record one acknowledgement."""
        self.calls.append({**kwargs, **({"seen": self._seen()} if self._seen else {})})


def _context(bot: BotHarness) -> BoltContext:
    """A request context holding the bot's runtime, as the app's middleware gives it."""
    return BoltContext({RUNTIME: bot.runtime})


def _click(bot: BotHarness, action_id: str, task_id: str, user: str = "UALICE") -> dict[str, Any]:
    """The body of a click on a task's card button."""
    row = bot.store.get(task_id)
    return payloads.build_block_action(
        action_id=action_id,
        value=task_id,
        user=user,
        channel=CHANNEL,
        message_ts=row.message_ts if row else None,
        trigger_id=bot.slack.new_trigger_id(user),
        response_url=bot.slack.new_response_url(),
    )


def _announce(bot: BotHarness, sandbox: Sandbox) -> str:
    """Add a pending task in LeadLex and let the bot announce it; return its id."""
    task_id = sandbox.add_task("prospect_search", "Find VPs of Sales in fintech")["id"]
    bot.poll()
    assert bot.store.get(task_id).message_ts is not None
    return task_id


def test_approve_is_journaled_then_acknowledged_and_carried_out(bot: BotHarness, sandbox: Sandbox) -> None:
    """handle_approve acks once, with nothing to say, and the task is approved in LeadLex by the clicker."""
    task_id = _announce(bot, sandbox)
    body = _click(bot, blocks.APPROVE_ACTION, task_id)
    ack = RecordingAck()
    handle_approve(ack=ack, body=body, action=body["actions"][0], context=_context(bot))
    assert ack.calls == [{}]
    bot.settle()
    assert sandbox.task(task_id)["status"] == "approved"
    row = bot.store.get(task_id)
    assert (row.state, row.actor, row.surface) == ("approved", "UALICE", "button")


def test_dismiss_of_an_unknown_task_acks_first_then_says_so(bot: BotHarness, slack: SlackStandIn) -> None:
    """handle_dismiss acknowledges before anything is said, then tells the clicker the task is unknown; no form."""
    body = _click(bot, blocks.DISMISS_ACTION, "no-such-task")
    ack = RecordingAck(seen=lambda: len(slack.ephemerals_for("UALICE")))
    handle_dismiss(ack=ack, body=body, action=body["actions"][0], client=bot.runtime.slack, context=_context(bot))
    assert ack.calls == [{"seen": 0}]
    bot.settle()
    assert [e.text for e in slack.ephemerals_for("UALICE")] == ["I have no record of this task."]
    assert slack.views == []


def test_dismiss_of_a_decided_task_says_who_decided(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """A Dismiss click on a task someone approved meanwhile names who did, and opens no form."""
    task_id = _announce(bot, sandbox)
    approve = _click(bot, blocks.APPROVE_ACTION, task_id, user="UBOB")
    handle_approve(ack=RecordingAck(), body=approve, action=approve["actions"][0], context=_context(bot))
    bot.settle()
    body = _click(bot, blocks.DISMISS_ACTION, task_id)
    handle_dismiss(
        ack=RecordingAck(), body=body, action=body["actions"][0], client=bot.runtime.slack, context=_context(bot)
    )
    bot.settle()
    assert [e.text for e in slack.ephemerals_for("UALICE")] == ["This task was already approved by <@UBOB>."]
    assert slack.views == []


def test_dismiss_of_a_pending_task_opens_the_reason_form(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A Dismiss click on a pending task opens the reason form for it, and says nothing else."""
    task_id = _announce(bot, sandbox)
    body = _click(bot, blocks.DISMISS_ACTION, task_id)
    ack = RecordingAck()
    handle_dismiss(ack=ack, body=body, action=body["actions"][0], client=bot.runtime.slack, context=_context(bot))
    assert ack.calls == [{}]
    bot.settle()
    (opened,) = slack.views
    assert task_id in opened.view["private_metadata"]
    assert slack.ephemerals_for("UALICE") == []


def test_lexi_help_is_answered_in_the_ack(bot: BotHarness) -> None:
    """/lexi help answers with the usage in the ack itself."""
    fields = payloads.build_slash_command(
        text="help",
        user="UALICE",
        response_url=bot.slack.new_response_url(),
        trigger_id=bot.slack.new_trigger_id("UALICE"),
    )
    ack = RecordingAck()
    handle_lexi(ack=ack, command=fields, context=_context(bot))
    assert ack.calls == [{"response_type": "ephemeral", "text": replies.USAGE}]


def test_decider_check_refuses_with_an_audit_and_allows_a_member(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Decider.check: an unknown task, a refusal (audited once) and a permitted person, each with its message."""
    slack.set_members(CHANNEL, ["UBOT", "UALICE"])
    task_id = _announce(bot, sandbox)
    decider = bot.runtime.decider
    assert decider.check("no-such-task", "UALICE", "dismiss", "button") == Check(
        allowed=False, row=None, message="I have no record of this task."
    )
    refused = decider.check(task_id, "UDAVE", "dismiss", "button")
    assert not refused.allowed and refused.row is not None and refused.row.task_id == task_id
    assert refused.message is not None and "can dismiss" in refused.message
    allowed = decider.check(task_id, "UALICE", "dismiss", "button")
    assert allowed.allowed and allowed.message is None and allowed.row is not None
    audits = [(e["actor"], e["surface"], e["detail"]) for e in bot.store.audit_events() if e["event"] == "refused"]
    assert audits == [("UDAVE", "button", "dismiss form: not allowed")]
