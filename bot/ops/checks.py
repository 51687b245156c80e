"""What `lexi-bot check` and the start of `lexi-bot run` ask LeadLex and Slack, and how each answer is put."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import Settings
from bot.core.policy import Policy
from bot.errors import ConfigError, InvalidKey, LexiBotError, LexiError, PermissionDenied, TransientError
from bot.lexi.client import LexiClient
from bot.lexi.models import TaskState
from bot.ops.reach import UNREACHABLE, unreachable_reason
from bot.slack.messenger import make_web_client, slack_error_text

#: What the start of `lexi-bot run` logs when the process runs on the C library's malloc (README → Memory).
MALLOC_HINT = (
    "the C library's malloc (its heap fragments under steady work and the memory creeps up; the Docker image "
    "preloads jemalloc, on which it grew less in the first half hour: README → Memory)"
)

#: Seconds `check` waits for each service by default (the bot's own Slack client waits as long).
DEFAULT_TIMEOUT = 15.0

#: Slack errors about the app-level token that mean it is not (or no longer) a valid token of this app.
_APP_TOKEN_REFUSED = {
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "not_allowed_token_type",
}

Result = tuple[bool, str]


def slack_unreachable(settings: Settings, exc: BaseException, timeout: float) -> str:
    """The line for a Slack API that could not be reached."""
    return f"could not reach Slack at {settings.slack_api_url}: {unreachable_reason(exc, timeout)}"


def slack_refusal(settings: Settings, exc: SlackApiError) -> str:
    """The line for a failed Slack call: Slack's error with what to do, or a server at the URL that is not Slack."""
    response = exc.response
    error = str(response.get("error", "")) if response is not None else ""
    if not re.fullmatch(r"[a-z_]+", error):  # slack_sdk puts "Received a response in a non-JSON format: …" here
        status = getattr(response, "status_code", "?")
        return (
            f"the server at {settings.slack_api_url} did not answer as Slack's Web API does (HTTP {status}, "
            "no JSON): check SLACK_API_URL (normally https://slack.com/api/) or leave it unset"
        )
    return slack_error_text(exc)


def lexi_trouble(settings: Settings, exc: LexiError, timeout: float) -> str:
    """The line for LeadLex failing to answer: out of reach (with the URL and why) or answering with an error."""
    return lexi_trouble_at(settings.lexi_api_url, exc, timeout)


def lexi_trouble_at(url: str, exc: LexiError, timeout: float) -> str:
    """The line for LeadLex at `url` failing to answer: out of reach (and why) or answering with an error."""
    if isinstance(exc, TransientError) and exc.status is None and exc.__cause__ is not None:
        return f"could not reach LeadLex at {url}: {unreachable_reason(exc, timeout)}"
    return f"LeadLex did not answer at {url}: {exc}"


def app_token_refused(error: str) -> str:
    """The line for an app-level token Slack refused at apps.connections.open."""
    if error in _APP_TOKEN_REFUSED:
        return (
            f"Slack refused SLACK_APP_TOKEN ({error}): copy the app-level token (xapp-…) with the "
            "connections:write scope again (Basic Information → App-Level Tokens)"
        )
    if error == "missing_scope":
        return "SLACK_APP_TOKEN lacks the connections:write scope: create an app-level token with it"
    return f"Slack refused SLACK_APP_TOKEN ({error}): check that Socket Mode is enabled for the app"


def check_app_token(settings: Settings, timeout: float) -> Result:
    """Ask Slack for a Socket Mode URL with the app-level token (the URL is left unused and expires)."""
    if settings.slack_app_token is None:  # checked only in Socket Mode, which needs it
        raise ConfigError("SLACK_APP_TOKEN is not set")
    client = WebClient(base_url=settings.slack_api_url, timeout=int(max(timeout, 1)))
    try:
        client.apps_connections_open(app_token=settings.slack_app_token.get_secret_value())
    except SlackApiError as exc:
        error = str(exc.response.get("error", "unknown_error")) if exc.response is not None else "unknown_error"
        return False, app_token_refused(error)
    except UNREACHABLE as exc:
        return False, slack_unreachable(settings, exc, timeout)
    return True, "Socket Mode app token accepted (SLACK_APP_TOKEN)"


def channel_sources(settings: Settings, policy: Policy) -> dict[str, str]:
    """Each channel the policy announces in, with where it was set (SLACK_CHANNEL, or the policy file and key)."""
    found: dict[str, list[str]] = defaultdict(list)
    name = Path(policy.source).name  # as the policy's own errors name it ("lexi-bot.yml line 3")
    if settings.slack_channel:
        found[settings.slack_channel].append("SLACK_CHANNEL")
    if policy.default.channel != settings.slack_channel:
        found[policy.default.channel].append(f"policy file {name}, defaults.channel")
    for task_type, type_policy in policy.types.items():
        if type_policy.channel != policy.default.channel:
            found[type_policy.channel].append(f"policy file {name}, types.{task_type}.channel")
    return {channel: "; ".join(found[channel]) or "policy" for channel in sorted(policy.channels())}


def channel_problem(channel: str, source: str, exc: SlackApiError) -> str:
    """The line for a channel Slack would not describe, naming where the channel was set."""
    error = str(exc.response.get("error", "unknown_error")) if exc.response is not None else "unknown_error"
    if error == "channel_not_found":
        return (
            f"channel {channel} ({source}): Slack said channel_not_found: the bot sees no channel with this ID — "
            "use the channel ID (C…, from the channel's details), not its #name"
        )
    return f"channel {channel} ({source}): {slack_error_text(exc)}"


def check_channel(slack: WebClient, channel: str, source: str) -> Result:
    """Whether the bot is a member of one announcement channel."""
    try:
        info: dict[str, Any] = slack.conversations_info(channel=channel).get("channel") or {}
    except SlackApiError as exc:
        return False, channel_problem(channel, source, exc)
    name = info.get("name", channel)
    if info.get("is_member"):
        return True, f"the bot is a member of #{name} ({channel}, {source})"
    return False, f"the bot is not in #{name} ({channel}, {source}): type /invite @lexi-bot there"


def check_lexi(settings: Settings, timeout: float) -> Result:
    """Whether LeadLex accepts the key with the Lexi permission."""
    if settings.lexi_api_key is None:  # the command required it
        raise ConfigError("LEXI_API_KEY is not set")
    return check_lexi_key(settings.lexi_api_url, settings.lexi_api_key.get_secret_value(), timeout)


def check_lexi_key(
    url: str,
    key: str,
    timeout: float,
    *,
    name: str = "LEXI_API_KEY",
    fix: str = "set LEXI_API_KEY",
    attempts: int = 2,
    max_wait: float = 5,
) -> Result:
    """Whether LeadLex at `url` accepts `key` with the Lexi permission; the lines call the key `name`.

    `fix` says where a new key goes (the Home tab's modal asks for it to be pasted there); `attempts` and
    `max_wait` bound the time taken (a modal has 3 seconds).
    """
    lexi = LexiClient(url, key, timeout=timeout, attempts=attempts, max_wait=max_wait)
    try:
        pending = lexi.list_tasks(TaskState.PENDING)
        return True, f"LeadLex key accepted with the Lexi permission ({len(pending)} pending tasks)"
    except InvalidKey:
        return False, f"LeadLex refused {name} (invalid_key): create a new key and {fix}"
    except PermissionDenied:
        return False, f"{name} lacks the Lexi permission: enable it for the key in LeadLex"
    except LexiError as exc:
        return False, lexi_trouble_at(url, exc, timeout)
    finally:
        lexi.close()


def run_checks(settings: Settings, timeout: float = DEFAULT_TIMEOUT) -> list[Result]:
    """Each check as (passed, one line saying what was found or what to fix); every check is run and reported."""
    if settings.slack_bot_token is None:  # the command required it
        raise ConfigError("SLACK_BOT_TOKEN is not set")
    results = [check_lexi(settings, timeout)]
    slack = make_web_client(
        settings.slack_bot_token.get_secret_value(), settings.slack_api_url, timeout=int(max(timeout, 1))
    )
    try:
        auth = slack.auth_test()
        results.append((True, f"Slack token accepted (bot @{auth.get('user')} in {auth.get('team')})"))
    except SlackApiError as exc:
        results.append((False, slack_refusal(settings, exc)))
        return results
    except UNREACHABLE as exc:
        results.append((False, slack_unreachable(settings, exc, timeout)))
        return results
    if settings.slack_app_token is not None:
        results.append(check_app_token(settings, timeout))
    try:
        sources = channel_sources(settings, settings.policy())
    except LexiBotError as exc:
        results.append((False, f"the policy file: {exc}"))
        sources = {settings.slack_channel: "SLACK_CHANNEL"} if settings.slack_channel else {}
    for channel, source in sources.items():
        try:
            results.append(check_channel(slack, channel, source))
        except UNREACHABLE as exc:
            results.append((False, slack_unreachable(settings, exc, timeout)))
            break
    return results


def allocator(maps: str | None = None) -> str:
    """Which memory allocator this process runs on, in words: jemalloc when it is loaded (LD_PRELOAD), else MALLOC_HINT.

    `maps`: the text of /proc/self/maps (read when None); "unknown" where there is none (not Linux).
    """
    if maps is None:
        try:
            maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "unknown (no /proc/self/maps on this system)"
    return "jemalloc" if "/libjemalloc.so" in maps else MALLOC_HINT
