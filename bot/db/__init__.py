"""The bot's records: the database models and store, migrations, and the guards on the database URL and file."""
