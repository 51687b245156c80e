"""`lexi-bot demo`: a Slack-like channel in the browser, driving the real bot against local stand-ins."""

from bot.dev.demo.app import Demo, run_demo

__all__ = ["Demo", "run_demo"]
