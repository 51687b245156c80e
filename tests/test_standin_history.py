"""The Slack stand-in says who posted each message, as Slack does, so the bot can tell its own cards apart."""

from __future__ import annotations

from slack_sdk import WebClient

from bot.dev.standin.slack import SlackStandIn

CHANNEL = "C0LEXI"


def test_history_names_who_posted_each_message(slack: SlackStandIn) -> None:
    """Each kind of message in a channel's history carries the ids Slack gives it.

    The bot's messages carry its user and bot ids (as auth.test names them), people's their user id only, another
    app's its own bot id, and a legacy bot message a bot id and the bot_message subtype without a user.
    """
    client = WebClient(token="xoxb-test-token", base_url=slack.api_url, timeout=5)
    me = client.auth_test()
    assert (me["user_id"], me["bot_id"]) == (slack.bot_user_id, slack.bot_id)
    client.chat_postMessage(channel=CHANNEL, text="mine")
    slack.add_message(CHANNEL, "a person", user="UCAROL")
    slack.add_message(CHANNEL, "another app", user="UOTHERBOT", bot_id="B0OTHER")
    slack.add_message(CHANNEL, "a legacy bot", user="", bot_id="B0OTHER")
    history = client.conversations_history(channel=CHANNEL)["messages"]
    posted = {m["text"]: (m.get("user"), m.get("bot_id"), m.get("subtype")) for m in history}
    assert posted == {
        "mine": (me["user_id"], me["bot_id"], None),
        "a person": ("UCAROL", None, None),
        "another app": ("UOTHERBOT", "B0OTHER", None),
        "a legacy bot": (None, "B0OTHER", "bot_message"),
    }
