"""Scenario tests: the bot run as a real server, driven over HTTP with stand-ins for Slack and LeadLex."""
