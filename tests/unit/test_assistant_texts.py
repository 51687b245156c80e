"""What the assistant pane recognises in a message and how it titles a thread (pure functions)."""

from __future__ import annotations

import pytest

from bot.slack import assistant


@pytest.mark.parametrize(
    "text",
    [
        "What is waiting for my approval?",
        "what's waiting?",
        "What are still waiting",
        "anything waiting for me?",
        "Show me what is pending",
    ],
)
def test_queue_questions_are_recognised(text: str) -> None:
    """Questions about the queue are answered from the bot's records."""
    assert assistant.is_queue_question(text)


@pytest.mark.parametrize(
    "text", ["Find 20 VPs of Sales at fintech companies in New York", "Summarise what Lexi did today", "waiting room"]
)
def test_other_requests_go_to_lexi(text: str) -> None:
    """Everything else is Lexi's to answer."""
    assert not assistant.is_queue_question(text)


def test_the_title_is_one_clipped_line() -> None:
    """A title is the first message on one line, at most TITLE_MAX characters with a visible cut."""
    assert assistant.title_from("  Find\nCFOs  ") == "Find CFOs"
    long = assistant.title_from("x " * 100)
    assert len(long) == assistant.TITLE_MAX and long.endswith("…")


def test_three_prompts_are_suggested() -> None:
    """The pane suggests the issue's three prompts, the queue question first."""
    assert len(assistant.SUGGESTED_PROMPTS) == 3
    assert assistant.is_queue_question(assistant.SUGGESTED_PROMPTS[0])
    assert not any(assistant.is_queue_question(p) for p in assistant.SUGGESTED_PROMPTS[1:])
