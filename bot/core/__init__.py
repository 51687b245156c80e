"""The bot's work, free of Slack's and LeadLex's wire formats: deciding, announcing, polling, webhooks, policy."""
