"""Local stand-ins for trying and testing the bot: the LeadLex sandbox, the Slack stand-in, the demo.

Imported only by the CLI and tests.
"""
