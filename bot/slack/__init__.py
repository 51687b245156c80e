"""Everything Slack: the Bolt app, its listeners, what the bot says and shows, and how requests are checked."""
