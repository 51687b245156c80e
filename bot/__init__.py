"""lexi-bot: a Slack approval bot for LeadLex's AI assistant Lexi."""

__version__ = "0.1.0"
