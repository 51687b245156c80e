"""Deploy recipes say what the README promises (no Docker engine runs here, so they are checked as files)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_dockerfile_is_small_non_root_and_health_checked() -> None:
    """The image builds from a slim base, runs as an unprivileged user, checks /healthz and runs the bot."""
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    user_lines = [line for line in text.splitlines() if line.startswith("USER ")]
    assert user_lines and user_lines[-1] != "USER root"
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert text.rstrip().endswith('CMD ["lexi-bot", "run"]')


def test_compose_runs_migrations_before_the_bot_on_postgresql() -> None:
    """compose.yaml starts PostgreSQL, migrates once, then runs the bot against it."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres:")
    assert services["migrate"]["command"] == ["lexi-bot", "migrate"]
    assert services["bot"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["bot"]["environment"]["DATABASE_URL"].startswith("postgresql://")


def test_heroku_app_json_asks_for_every_required_setting() -> None:
    """app.json adds PostgreSQL and asks for the settings the bot cannot start without."""
    app = json.loads((ROOT / "app.json").read_text())
    assert any(addon["plan"].startswith("heroku-postgresql") for addon in app["addons"])
    required = {name for name, spec in app["env"].items() if spec.get("required")}
    assert required == {"LEXI_API_KEY", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_CHANNEL"}
    assert (ROOT / "requirements.txt").read_text().splitlines()[-1] == "."
