"""A Slack stand-in for tests and the demo: the Web API, response URLs, modals and Block Kit checks, over HTTP."""
