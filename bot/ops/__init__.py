"""Running it: the HTTP front, metrics, logs, the polling leader, start-up checks."""
