"""In-process tests of the core: a real Store on SQLite, with in-memory fakes for Slack and LeadLex (no HTTP)."""
