"""What the tests share: the harness that starts the bot, stand-in helpers, proxies and process control."""
