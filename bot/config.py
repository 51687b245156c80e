"""Settings: read once from the environment (and `.env`), validated all at once, then passed around frozen."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Literal

from dotenv import load_dotenv
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from bot.core.policy import Policy, from_settings, load_policy
from bot.db.vault import Vault
from bot.errors import ConfigError, EncryptionKeysError

log = logging.getLogger("bot.config")

DEFAULT_LEXI_API_URL = "https://data.leadlex.com/functions/v1/api-gateway"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_DATABASE_URL = "sqlite:///lexi-bot.db"

Mode = Literal["http", "socket"]
#: One Slack workspace (a bot token and a LeadLex key in the settings) or many (each installed over OAuth).
WorkspaceMode = Literal["single", "multi"]

MIN_WEBHOOK_SECRET = 16  # characters: shorter is not a signing secret LeadLex returned
MAX_BUDGET_RESERVE = 90  # percent: more kept back would leave polling next to nothing

#: Environment variable → field name; the order is the order problems are reported in.
_VARIABLES = {
    "LEXI_API_KEY": "lexi_api_key",
    "LEXI_API_URL": "lexi_api_url",
    "SLACK_BOT_TOKEN": "slack_bot_token",
    "SLACK_SIGNING_SECRET": "slack_signing_secret",
    "SLACK_APP_TOKEN": "slack_app_token",
    "SLACK_CHANNEL": "slack_channel",
    "SLACK_API_URL": "slack_api_url",
    "SLACK_CLIENT_ID": "slack_client_id",
    "SLACK_CLIENT_SECRET": "slack_client_secret",
    "LEXI_ENCRYPTION_KEYS": "encryption_keys",
    "LEXI_PUBLIC_URL": "public_url",
    "DATABASE_URL": "database_url",
    "POLL_INTERVAL": "poll_interval",
    "PORT": "port",
    "LOG_LEVEL": "log_level",
    "LEXI_APPROVERS": "lexi_approvers",
    "LEXI_WEBHOOK_SECRET": "lexi_webhook_secret",
    "RECONCILE_INTERVAL": "reconcile_interval",
    "LEXI_BUDGET_RESERVE": "budget_reserve",
    "LEXI_POLICY_FILE": "policy_file",
    "LOG_FORMAT": "log_format",
}
_FIELDS = {field: variable for variable, field in _VARIABLES.items()}

#: Multi-workspace mode is on when all three are set (some but not all is a configuration error).
MULTI_WORKSPACE = ("slack_client_id", "slack_client_secret", "encryption_keys")
#: Settings of the single-workspace mode that multi-workspace mode ignores: each workspace brings its own.
SINGLE_WORKSPACE_ONLY = ("lexi_api_key", "slack_bot_token", "slack_channel")


def normalize_database_url(url: str) -> str:
    """Point PostgreSQL URLs (including Heroku's `postgres://`) at the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Settings(BaseModel):
    """Everything the bot is configured with; secrets are `SecretStr` so they never print."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lexi_api_key: SecretStr | None = None
    lexi_api_url: str = DEFAULT_LEXI_API_URL
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_channel: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    encryption_keys: SecretStr | None = None
    public_url: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    poll_interval: float = Field(default=60.0, gt=0, le=86_400)
    port: int = Field(default=3000, ge=0, le=65_535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    lexi_approvers: tuple[str, ...] = ()
    lexi_webhook_secret: SecretStr | None = None
    reconcile_interval: float = Field(default=3600.0, ge=60, le=86_400)
    budget_reserve: float = Field(default=20.0, ge=0, le=90)
    policy_file: str | None = None
    log_format: Literal["text", "json"] = "text"

    @field_validator("lexi_approvers", mode="before")
    @classmethod
    def _approvers(cls, value: object) -> object:
        """A comma- or space-separated list of Slack user IDs; empty means anyone in the channel."""
        if isinstance(value, str):
            value = tuple(part for part in re.split(r"[\s,]+", value) if part)
        if isinstance(value, (tuple, list)):
            bad = [v for v in value if not re.fullmatch(r"[UW][A-Z0-9]{2,}", str(v))]
            if bad:
                raise ValueError(f"must be Slack user IDs such as U0123ABCD (not {', '.join(map(str, bad[:3]))})")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        """Accept log levels in any case."""
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        """Accept the log format in any case."""
        return value.lower() if isinstance(value, str) else value

    @field_validator("lexi_api_url", "slack_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        """Accept only http(s) URLs."""
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        """The bot's own address as LeadLex reaches it: an http(s) URL, kept without a trailing slash."""
        if value is None:
            return None
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError("must be the bot's http(s) address, such as https://lexi.example.com")
        return value.rstrip("/")

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        """slack_sdk joins method names onto the base URL, which therefore ends in a slash."""
        return value if value.endswith("/") else value + "/"

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        """Accept SQLite and PostgreSQL URLs only."""
        value = normalize_database_url(value)
        if not value.startswith(("sqlite:", "postgresql+psycopg://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("slack_channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        """A channel ID (C… or G…), not a #name: names change, IDs do not."""
        if value is not None and not re.fullmatch(r"[CGD][A-Z0-9]{2,}", value):
            raise ValueError("must be a channel ID such as C0123ABCD (not a #name)")
        return value

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        """Bot tokens start with xoxb-."""
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        """App-level tokens start with xapp-."""
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return value

    @field_validator("lexi_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        """A signing secret as `lexi-bot webhooks register` printed it."""
        if value is not None and len(value.get_secret_value()) < MIN_WEBHOOK_SECRET:
            raise ValueError("is too short to be the signing secret LeadLex returned at registration")
        return value

    @field_validator("budget_reserve", mode="before")
    @classmethod
    def _percent(cls, value: object) -> object:
        """A percentage (`20`, `20%`) or a fraction below one (`0.2`: 20 %, which is what people mean by it)."""
        hint = "must be a percentage of the daily budget from 0 to 90, such as 20% or 0.2 (a fraction: 20 %)"
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(hint)  # noqa: TRY004 - pydantic reports a ValueError as a validation error, not a TypeError
        text = str(value).strip()
        marked = text.endswith("%")
        try:
            number = float(text.removesuffix("%").strip())
        except ValueError:
            raise ValueError(hint) from None
        if not marked and 0 < number < 1:
            number = round(number * 100, 6)  # a fraction: 0.2 is 20 %; a percentage below 1 % needs its sign (0.5%)
        if not 0 <= number <= MAX_BUDGET_RESERVE:
            raise ValueError(hint)
        return number

    @field_validator("encryption_keys")
    @classmethod
    def _encryption_keys(cls, value: SecretStr | None) -> SecretStr | None:
        """Fernet keys separated by commas, checked as the vault checks them (its messages never quote a key)."""
        if value is not None:
            try:
                Vault.parse(value.get_secret_value())
            except EncryptionKeysError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("lexi_api_key")
    @classmethod
    def _api_key(cls, value: SecretStr | None) -> SecretStr | None:
        """Workspace keys start with wbk_."""
        if value is not None and not value.get_secret_value().startswith("wbk_"):
            raise ValueError("must be a LeadLex workspace key starting with wbk_")
        return value

    def policy(self) -> Policy:
        """The approval policy: the policy file when one is configured, else SLACK_CHANNEL and LEXI_APPROVERS."""
        if self.slack_channel is None:  # a policy is asked for only with Slack configured
            raise ConfigError("SLACK_CHANNEL is not set")
        if self.policy_file:
            return load_policy(self.policy_file, channel=self.slack_channel, approvers=self.lexi_approvers)
        return from_settings(self.slack_channel, self.lexi_approvers)

    @property
    def mode(self) -> Mode:
        """Socket Mode when an app-level token is configured, HTTP mode otherwise."""
        return "socket" if self.slack_app_token is not None else "http"

    @property
    def workspace_mode(self) -> WorkspaceMode:
        """'multi' when SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and LEXI_ENCRYPTION_KEYS are set, 'single' otherwise."""
        return "multi" if all(getattr(self, field) is not None for field in MULTI_WORKSPACE) else "single"

    @property
    def multi_workspace(self) -> bool:
        """Whether the bot serves every workspace that installs it (workspace_mode == 'multi')."""
        return self.workspace_mode == "multi"

    def vault(self) -> Vault:
        """The vault of LEXI_ENCRYPTION_KEYS; EncryptionKeysError when it is not set."""
        if self.encryption_keys is None:
            raise EncryptionKeysError("LEXI_ENCRYPTION_KEYS is not set: stored secrets cannot be encrypted or read")
        return Vault.parse(self.encryption_keys.get_secret_value())

    @property
    def database_kind(self) -> str:
        """'sqlite' or 'postgresql'."""
        return "sqlite" if self.database_url.startswith("sqlite") else "postgresql"

    def secrets(self) -> list[str]:
        """Every configured secret value, for log redaction."""
        found = [
            self.lexi_api_key,
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.lexi_webhook_secret,
            self.slack_client_secret,
            self.encryption_keys,
        ]
        values = [s.get_secret_value() for s in found if s is not None and s.get_secret_value()]
        if self.encryption_keys is not None:  # each key on its own too: a line may hold one of them
            values.extend(key.strip() for key in self.encryption_keys.get_secret_value().split(",") if key.strip())
        return values


class RunSettings(Settings):
    """Settings validated for running the bot: the LeadLex key, the bot token and the channel are there."""

    lexi_api_key: SecretStr
    slack_bot_token: SecretStr
    slack_channel: str

    def policy(self) -> Policy:
        """The approval policy: the policy file when one is configured, else SLACK_CHANNEL and LEXI_APPROVERS."""
        if self.policy_file:
            return load_policy(self.policy_file, channel=self.slack_channel, approvers=self.lexi_approvers)
        return from_settings(self.slack_channel, self.lexi_approvers)


class HttpSettings(RunSettings):
    """Settings for HTTP mode: Slack's requests are checked with the signing secret."""

    slack_signing_secret: SecretStr
    slack_app_token: None = None


class SocketSettings(RunSettings):
    """Settings for Socket Mode: the bot connects to Slack with the app-level token."""

    slack_app_token: SecretStr


def run_settings(settings: Settings) -> HttpSettings | SocketSettings:
    """The same settings, narrowed to what running the bot needs; ConfigError naming what is missing otherwise."""
    if settings.multi_workspace:
        raise ConfigError(
            "multi-workspace mode (SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and LEXI_ENCRYPTION_KEYS are set) has no "
            "single bot token, channel or LeadLex key: each workspace's runtime is built from the registry "
            "(bot.tenants); unset those three to run the bot for one workspace"
        )
    missing = [
        variable
        for field, variable in _FIELDS.items()
        if field in ("lexi_api_key", "slack_bot_token", "slack_channel") and getattr(settings, field) is None
    ]
    if settings.slack_app_token is None and settings.slack_signing_secret is None:
        missing.append("SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)")
    if missing:
        problems = [f"{name} is not set" for name in missing]
        raise ConfigError("Configuration problems — fix these and start again:\n  - " + "\n  - ".join(problems))
    values = dict(settings)  # the validated values as they are (a second validation keeps them)
    if settings.slack_app_token is not None:
        return SocketSettings(**values)
    return HttpSettings(**values)


def read_environment() -> dict[str, str]:
    """The process's environment, with `.env` (or the file LEXI_ENV_FILE names) beneath it: read once, at start.

    Variables already set win over the file's. Everything else gets its configuration from what this returns.
    """
    load_dotenv(os.environ.get("LEXI_ENV_FILE", ".env"), override=False)
    return dict(os.environ)


def _missing(values: Mapping[str, object], require: tuple[str, ...], *, multi: bool = False) -> list[str]:
    """The variables `require` asks for that `values` lacks, in the order they are reported.

    In multi-workspace mode (`multi`) each workspace brings its LeadLex key, bot token and channel: only the
    signing secret is required for "slack", and nothing for "lexi".
    """
    missing: list[str] = []
    if multi:
        if "slack" in require and "slack_signing_secret" not in values:
            missing.append("SLACK_SIGNING_SECRET")
        return missing
    if "lexi" in require and "lexi_api_key" not in values:
        missing.append("LEXI_API_KEY")
    if "slack" in require:
        missing.extend(_FIELDS[field] for field in ("slack_bot_token", "slack_channel") if field not in values)
        if "slack_app_token" not in values and "slack_signing_secret" not in values:
            missing.append("SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)")
    return missing


def load_settings(
    environ: Mapping[str, str], *, require: tuple[str, ...] = ("lexi", "slack"), **overrides: object
) -> Settings:
    """Build settings from an environment mapping; raise one ConfigError naming every problem.

    `require` says which parts the command needs: "lexi" (an API key), "slack" (bot token, channel and
    the credentials of the connection mode). `overrides` set fields directly (e.g. the sandbox's URL and key).
    """
    values: dict[str, object] = {}
    for variable, field in _VARIABLES.items():
        raw = environ.get(variable)
        if raw is not None and raw.strip() != "":
            values[field] = raw.strip()
    problems = _workspace_mode_problems(values)
    multi = all(field in values for field in MULTI_WORKSPACE)
    values.update({k: v for k, v in overrides.items() if v is not None})

    problems += [f"{name} is not set" for name in _missing(values, require, multi=multi)]
    try:
        settings = Settings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            message = error["msg"].removeprefix("Value error, ")
            if field == "encryption_keys":  # the vault's messages name the variable and each key by position
                problems.extend(message.split("; "))
                continue
            problems.append(f"{_FIELDS.get(field, field)}: {message[:1].lower()}{message[1:]}")
        settings = None
    if problems or settings is None:
        raise ConfigError("Configuration problems — fix these and start again:\n  - " + "\n  - ".join(problems))
    return settings


def _workspace_mode_problems(values: dict[str, object]) -> list[str]:
    """Check the multi-workspace settings read from the environment; drop what that mode ignores (with a warning).

    All of SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and LEXI_ENCRYPTION_KEYS: multi-workspace mode, in HTTP mode only
    (Slack's OAuth install redirects to the bot's HTTP endpoint); none: single-workspace mode; some: a problem
    naming the missing ones.
    """
    given = [field for field in MULTI_WORKSPACE if field in values]
    if not given:
        return []
    if len(given) < len(MULTI_WORKSPACE):
        missing = " and ".join(_FIELDS[field] for field in MULTI_WORKSPACE if field not in values)
        present = " and ".join(_FIELDS[field] for field in given)
        verb = "is" if len(given) == len(MULTI_WORKSPACE) - 1 else "are"
        problem = (
            f"{missing} {verb} not set: multi-workspace mode needs SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and "
            f"LEXI_ENCRYPTION_KEYS together (or unset {present} to run for one workspace)"
        )
        return [problem]
    problems = []
    if "slack_app_token" in values:
        problems.append(
            "SLACK_APP_TOKEN: multi-workspace mode runs in HTTP mode only (Slack sends installs and events to the "
            "bot's URL): unset SLACK_APP_TOKEN and set SLACK_SIGNING_SECRET"
        )
    for field in SINGLE_WORKSPACE_ONLY:
        if values.pop(field, None) is not None:
            log.warning(
                "%s is ignored in multi-workspace mode: each workspace connects its own in the app's Home tab",
                _FIELDS[field],
            )
    return problems
