"""What Lexi is asked in a DM or a mention: the words after the leading mention of the bot, and nothing else."""

from __future__ import annotations

import pytest

from bot.slack import mentions


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("<@UBOT> find CFOs", "find CFOs"),
        ("  <@UBOT|lexi-bot>: find CFOs ", "find CFOs"),
        ("<@UBOT>", ""),
        ("find CFOs with <@UBOT>", "find CFOs with <@UBOT>"),
        ("<@UBOB> find CFOs", "<@UBOB> find CFOs"),
    ],
)
def test_only_the_leading_mention_of_the_bot_is_taken_off(text: str, words: str) -> None:
    """The bot's own leading mention goes; a mention elsewhere, or of someone else, stays."""
    assert mentions.without_mention(text, "UBOT") == words


def test_without_the_bots_id_nothing_is_taken_off() -> None:
    """When Bolt did not say who the bot is, the text is only trimmed."""
    assert mentions.without_mention(" <@UBOT> hi ", None) == "<@UBOT> hi"


def test_a_persons_new_message_is_answered() -> None:
    """A person's plain message is one to answer."""
    assert mentions.from_a_person({"user": "UALICE", "text": "hi"})


@pytest.mark.parametrize(
    "event",
    [
        {"user": "UOTHER", "bot_id": "B0OTHER"},
        {"user": "UALICE", "subtype": "message_changed"},
        {"subtype": "bot_message", "bot_id": "B0OTHER"},
    ],
)
def test_bots_and_edits_are_not_answered(event: dict[str, str]) -> None:
    """Bots' messages and edits are not a person asking."""
    assert not mentions.from_a_person(event)
