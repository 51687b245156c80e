"""Socket Mode (SLACK_APP_TOKEN set): the same app works over a WebSocket instead of signed HTTP."""

from __future__ import annotations

from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.runtime import Runtime
from bot.slack import blocks
from tests.support.harness import CHANNEL
from tests.support.socket_mode import SocketModeServer


def test_clicks_and_commands_arrive_over_socket_mode(
    socket_bot: tuple[Runtime, SocketModeServer], sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A button click and a /lexi command delivered over Socket Mode are acked and handled like HTTP ones."""
    runtime, server = socket_bot
    task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
    runtime.poller.cycle()
    assert runtime.drain(10)  # the announcement waits in its channel's queue
    ts = runtime.store.get(task_id).message_ts
    click = payloads.build_block_action(
        action_id=blocks.APPROVE_ACTION, value=task_id, message_ts=ts, response_url=slack.new_response_url()
    )
    server.wait_ack(server.send("interactive", click))
    assert runtime.drain(10)
    assert sandbox.task(task_id)["status"] == "approved"
    assert "Approved by <@UALICE>" in str(slack.message(CHANNEL, ts).blocks)
    command = payloads.build_slash_command(text="help", response_url=slack.new_response_url())
    ack = server.wait_ack(server.send("slash_commands", command, accepts_response_payload=True))
    assert "/lexi" in str(ack.get("payload"))
