"""The `lexi-bot` command: parse, load `.env` once, build settings, dispatch. Never shows a traceback."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import __version__
from bot.config import HttpSettings, Settings, SocketSettings, load_settings, read_environment, run_settings
from bot.db import migrate
from bot.db.guard import lock_sqlite, require_usable_database_url, sqlite_missing
from bot.db.reach import database_errors
from bot.db.store import Store, make_engine
from bot.errors import ConfigError, InvalidKey, LexiBotError, LexiError, PermissionDenied
from bot.lexi.client import LexiClient
from bot.lexi.models import TaskState
from bot.ops import checks
from bot.ops.logs import clip, setup_logging
from bot.ops.reach import UNREACHABLE

log = logging.getLogger("bot")

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - the bot runs in a container or behind a proxy; --host narrows it
MAX_TIMEOUT = 600  # seconds: the longest --timeout accepted
MAX_SANDBOX_WORKSPACES = 100_000  # the most `sandbox --workspaces` serves (the same bound as the sandbox's own)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    environ = read_environment()
    try:
        return int(args.func(args, environ) or 0)
    except (ConfigError, LexiBotError) as exc:
        print(f"lexi-bot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="lexi-bot", description="Slack approvals for LeadLex's Lexi tasks.")
    parser.add_argument("--version", action="version", version=f"lexi-bot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the bot (poller and Slack listeners)")
    run.add_argument("--sandbox", action="store_true", help="start a local LeadLex sandbox and use it")
    run.add_argument("--host", default=ALL_INTERFACES, help="address to listen on in HTTP mode (default 0.0.0.0)")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="check the configuration against LeadLex and Slack")
    check.add_argument("--sandbox", action="store_true", help="check against a local sandbox instead of LeadLex")
    check.add_argument(
        "--timeout",
        type=_seconds,
        default=checks.DEFAULT_TIMEOUT,
        help=f"seconds to wait for each service (default {checks.DEFAULT_TIMEOUT:g})",
    )
    check.set_defaults(func=cmd_check)

    mig = sub.add_parser("migrate", help="bring the database schema to the latest revision")
    mig.set_defaults(func=cmd_migrate)

    hooks = sub.add_parser("webhooks", help="manage the LeadLex webhooks that announce tasks in real time")
    actions = hooks.add_subparsers(dest="webhooks_command", metavar="ACTION", required=True)
    register = actions.add_parser("register", help="register this bot's /lexi/webhooks URL with LeadLex")
    register.add_argument("--url", required=True, help="public HTTPS URL, ending in /lexi/webhooks")
    register.add_argument("--description", default="lexi-bot", help="shown in LeadLex's webhook list")
    actions.add_parser("list", help="list the registered webhooks")
    delete = actions.add_parser("delete", help="delete a webhook")
    delete.add_argument("webhook_id")
    hooks.set_defaults(func=cmd_webhooks)

    policy = sub.add_parser("policy", help="validate the approval policy file")
    policy_actions = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    policy_check = policy_actions.add_parser("check", help="validate a policy file and say what it will do")
    policy_check.add_argument("file", nargs="?", help="the file (default: LEXI_POLICY_FILE)")
    policy.set_defaults(func=cmd_policy)

    audit = sub.add_parser("audit", help="export the audit trail of announcements and decisions")
    audit.add_argument("--since", help="only events from this date or time on (e.g. 2026-11-01 or 2026-11-01T09:00Z)")
    audit.add_argument("--format", choices=("csv", "json"), default="csv", help="output format (default csv)")
    audit.add_argument(
        "--workspace",
        metavar="TEAM_ID",
        help="multi-workspace mode: the workspace whose trail to export (an uninstalled one's too, until purged)",
    )
    audit.set_defaults(func=cmd_audit)

    _workspace_commands(sub)

    sandbox = sub.add_parser("sandbox", help="serve a local LeadLex-compatible API with sample tasks")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8787)
    sandbox.add_argument("--complete-after", type=float, default=15.0, help="seconds until approved tasks complete")
    sandbox.add_argument("--generate-every", type=float, default=None, help="add a new pending task every N seconds")
    sandbox.add_argument(
        "--workspaces",
        type=_workspace_count,
        default=0,
        metavar="N",
        help="also serve N more LeadLex workspaces, each with its own keys (printed), tasks and budget",
    )
    sandbox.add_argument(
        "--plan",
        choices=("starter", "pro", "org"),
        default=None,
        help="the LeadLex plan whose rate limits every workspace has, the default one included (default: a demo plan "
        "too large to matter)",
    )
    sandbox.set_defaults(func=cmd_sandbox)

    demo = sub.add_parser("demo", help="try the bot in a local Slack-like channel in your browser (no accounts)")
    demo.add_argument("--host", default="127.0.0.1", help="address for the demo page (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="port for the demo page, 0 for any (default 8000)")
    demo.add_argument("--open", action="store_true", help="open the page in the default browser")
    demo.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host beyond loopback (anyone who can reach it can drive the demo)",
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def _workspace_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands of multi-workspace mode's administrators: keys, workspaces, workspace purge."""
    keys = sub.add_parser("keys", help="the encryption keys of stored secrets (LEXI_ENCRYPTION_KEYS)")
    keys_actions = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    keys_actions.add_parser("generate", help="print a new key (put it first in LEXI_ENCRYPTION_KEYS to rotate)")
    keys_actions.add_parser("rotate", help="re-encrypt every stored secret with the first key (then drop the old)")
    keys.set_defaults(func=cmd_keys)

    workspaces = sub.add_parser("workspaces", help="list the Slack workspaces that installed the app")
    workspaces.set_defaults(func=cmd_workspaces)

    workspace = sub.add_parser("workspace", help="administer one installed workspace")
    workspace_actions = workspace.add_subparsers(dest="workspace_command", metavar="ACTION", required=True)
    purge = workspace_actions.add_parser(
        "purge", help="delete everything stored for an uninstalled workspace: registry, installation, tasks, audit"
    )
    purge.add_argument("workspace_id", metavar="TEAM_ID", help="the Slack team id (or Enterprise Grid org id)")
    purge.add_argument("--force", action="store_true", help="purge even if the app is still installed there")
    workspace.set_defaults(func=cmd_workspace)


def _seconds(text: str) -> float:
    """A positive number of seconds (for --timeout)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds between 0 and {MAX_TIMEOUT}")
    return value


def _workspace_count(text: str) -> int:
    """How many more workspaces the sandbox serves (for `sandbox --workspaces`): 0 to MAX_SANDBOX_WORKSPACES."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SANDBOX_WORKSPACES:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0 to {MAX_SANDBOX_WORKSPACES:,}")
    return value


# --- run ------------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Run the bot until SIGTERM / Ctrl-C; exit 0 after draining."""
    # Settings and the database first: a sandbox started before a configuration error only adds noise.
    require = ("slack",) if args.sandbox else ("lexi", "slack")
    settings = load_settings(environ, require=require)
    if settings.multi_workspace:
        return _run_multi(settings, args)
    setup_logging(settings.log_level, settings.secrets(), settings.log_format)
    lock = lock_sqlite(settings.database_url)  # noqa: F841 - held until the process exits
    with database_errors(settings.database_url):
        _prepare_database(settings)
    sandbox = _start_sandbox() if args.sandbox else None
    if sandbox is not None:
        overrides: dict[str, object] = {"lexi_api_url": sandbox.url, "lexi_api_key": sandbox.api_key}
        if "poll_interval" not in settings.model_fields_set:
            overrides["poll_interval"] = 5.0  # the sandbox has no daily budget to protect
        settings = load_settings(environ, require=require, **overrides)

    try:
        return _serve(run_settings(settings), args.host)
    finally:
        if sandbox is not None:
            sandbox.stop()


def _serve(settings: HttpSettings | SocketSettings, host: str) -> int:
    """Build the bot, check its credentials, and serve until a signal (0) or until a part of it stopped (1)."""
    from bot.runtime import Runtime
    from bot.service import Service
    from bot.slack.app import create_app

    with database_errors(settings.database_url):
        runtime = Runtime.build(settings)
    with Service(runtime) as service:
        _preflight(runtime)
        app = create_app(runtime)
        _stop_on_signal(service.stop)  # from here on: a SIGTERM while connecting still drains and exits 0
        if isinstance(settings, SocketSettings):
            log.warning("Socket Mode: run only one process with this app token (Slack spreads events across them)")
            try:
                service.connect_socket(app, settings.slack_app_token.get_secret_value())
            except SlackApiError as exc:  # refused after the preflight accepted it (revoked in between)
                error = str(exc.response.get("error", "unknown_error")) if exc.response is not None else "unknown_error"
                raise LexiBotError(checks.app_token_refused(error)) from None
            except UNREACHABLE as exc:
                raise LexiBotError(checks.slack_unreachable(settings, exc, checks.DEFAULT_TIMEOUT)) from None
            log.info("lexi-bot %s is running in Socket Mode; announcing in %s", __version__, settings.slack_channel)
            service.start_poller()
        else:
            try:
                front = service.serve_http(app, host, settings.port)
            except OSError as exc:  # the port is taken, or --host is not an address of this machine
                raise LexiBotError(
                    f"cannot listen on {host}:{settings.port} ({exc.strerror or exc}): stop what uses that port "
                    "or set PORT to a free one (and --host to an address of this machine)"
                ) from None
            log.info(
                "lexi-bot %s is listening on http://%s:%s/slack/events; announcing in %s",
                __version__,
                host,
                front.port,
                settings.slack_channel,
            )
            service.start_poller()
        log.info("memory allocator: %s", checks.allocator())
        dead = service.wait()
        if dead:  # exit non-zero so that the platform restarts the bot
            log.error("stopping because a part of the bot stopped: %s", ", ".join(dead))
        log.info("stopping: finishing decisions in flight")
    log.info("stopped")
    return 1 if dead else 0


def _run_multi(settings: Settings, args: argparse.Namespace) -> int:
    """Run multi-workspace mode (HTTP only) until SIGTERM / Ctrl-C: every connected workspace served and polled."""
    if args.sandbox:
        raise ConfigError(
            "--sandbox runs the bot for one workspace: in multi-workspace mode each workspace connects its own "
            "LeadLex (a sandbox's URL and key too) from the app's Home tab"
        )
    if settings.slack_app_token is not None:
        raise ConfigError(
            "multi-workspace mode runs in HTTP mode only (Slack sends each workspace's requests to one URL): "
            "unset SLACK_APP_TOKEN and set SLACK_SIGNING_SECRET"
        )
    setup_logging(settings.log_level, settings.secrets(), settings.log_format)
    lock = lock_sqlite(settings.database_url)  # noqa: F841 - held until the process exits
    with database_errors(settings.database_url):
        _prepare_database(settings)
    return _serve_multi(settings, args.host)


def _serve_multi(settings: Settings, host: str) -> int:
    """Build the workspaces' runtimes and the multi-workspace app; serve until a signal (0) or a part stopped (1)."""
    from slack_sdk import WebClient
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore

    from bot.core.schedule import Scheduler
    from bot.db.workspaces import Workspaces
    from bot.ops.metrics import Metrics
    from bot.service import Service
    from bot.slack.app import create_multi_workspace_app
    from bot.slack.install import InstallSettings, authorizer
    from bot.tenants import Tenants
    from bot.workers import Workers

    client_id, client_secret = settings.slack_client_id, settings.slack_client_secret
    signing = settings.slack_signing_secret
    if client_id is None or client_secret is None or signing is None:  # load_settings checked; for the type checker
        raise ConfigError("SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and SLACK_SIGNING_SECRET are needed")
    store = Store.from_url(settings.database_url)
    registry = Workspaces(store.engine, settings.vault())
    installations = SQLAlchemyInstallationStore(client_id=client_id, engine=store.engine, logger=log)
    metrics = Metrics()
    install = InstallSettings(client_id, client_secret.get_secret_value())
    client = WebClient(base_url=settings.slack_api_url)
    # Polls refresh an expiring bot token as requests do (once at a time per workspace, across replicas).
    tokens = authorizer(install, store.engine, client, installations)
    tenants = Tenants(
        settings, store, registry, installations, workers=Workers(metrics), metrics=metrics, tokens=tokens
    )
    with Service(tenants) as service:
        app = create_multi_workspace_app(
            install,
            store,
            signing_secret=signing.get_secret_value(),
            client=client,
            workspaces=registry,
            lexi_url=settings.lexi_api_url,
            # A workspace set up again, or uninstalled: its runtime is rebuilt, or gone; its webhook is registered.
            on_change=tenants.changed,
            tenants=tenants,
        )
        _stop_on_signal(service.stop)
        try:
            front = service.serve_http(app, host, settings.port)
        except OSError as exc:
            raise LexiBotError(
                f"cannot listen on {host}:{settings.port} ({exc.strerror or exc}): stop what uses that port "
                "or set PORT to a free one (and --host to an address of this machine)"
            ) from None
        log.info(
            "lexi-bot %s is listening on http://%s:%s/slack/events for every workspace that installs it "
            "(installs start at /slack/install)",
            __version__,
            host,
            front.port,
        )
        log.info("memory allocator: %s", checks.allocator())
        service.start_thread("lexi-keeper", tenants.keep)
        # Polls spread over the replicas by the database itself (SKIP LOCKED claims): no polling leader.
        scheduler = Scheduler(registry, tenants.poll, metrics=metrics)
        service.start_thread("lexi-scheduler", scheduler.run)
        dead = service.wait()
        if dead:
            log.error("stopping because a part of the bot stopped: %s", ", ".join(dead))
        log.info("stopping: finishing decisions in flight")
    log.info("stopped")
    return 1 if dead else 0


def _stop_on_signal(stop: threading.Event) -> None:
    """Make SIGTERM and SIGINT set `stop` (a graceful drain) instead of ending the process."""

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def _start_sandbox() -> Any:
    """Start an in-process LeadLex sandbox with sample tasks that complete a while after approval."""
    from bot.dev.sandbox import Sandbox

    sandbox = Sandbox(complete_after=15.0).start()
    print(f"lexi-bot: using a local LeadLex sandbox at {sandbox.url} (sample tasks, no real data)", file=sys.stderr)
    return sandbox


def _prepare_database(settings: Settings) -> None:
    """SQLite is migrated on start; PostgreSQL must have been migrated by the release phase."""
    engine = make_engine(settings.database_url)
    try:
        if settings.database_kind == "sqlite":
            migrate.upgrade(engine)
        elif migrate.current(engine) != migrate.head():
            raise ConfigError(
                "the PostgreSQL schema is not at the latest revision: run `lexi-bot migrate` first "
                "(the Procfile's release phase does this on Heroku)"
            )
    finally:
        engine.dispose()


def _preflight(runtime: Any) -> None:
    """Stop at once, with what to fix, when Slack is out of reach or LeadLex or Slack refuse the credentials."""
    settings = runtime.settings
    try:
        with _quiet(_SLACK_SDK_LOGGER):  # our one line replaces its "Failed to send a request" errors
            _preflight_slack(runtime)
    except UNREACHABLE as exc:
        raise LexiBotError(checks.slack_unreachable(settings, exc, checks.DEFAULT_TIMEOUT)) from None
    try:
        runtime.lexi.list_tasks(TaskState.PENDING)
    except InvalidKey:
        raise LexiBotError(
            "LeadLex refused LEXI_API_KEY (401 invalid_key): create a new key in LeadLex and set LEXI_API_KEY"
        ) from None
    except PermissionDenied:
        raise LexiBotError(
            "LEXI_API_KEY lacks the Lexi permission (403 insufficient_permissions): enable it for the key in LeadLex"
        ) from None
    except LexiError as exc:
        log.warning("%s; the poller will keep trying", checks.lexi_trouble(settings, exc, 10.0))


#: The logger slack_sdk reports failed requests on (at ERROR, before raising what we explain ourselves).
_SLACK_SDK_LOGGER = "slack_sdk.web.base_client"


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Silence one library logger for the duration (its failures are raised and explained by us)."""
    logger = logging.getLogger(name)
    before = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = before


def _preflight_slack(runtime: Any) -> None:
    """The bot token, the app-level token (Socket Mode) and every announcement channel, each named when refused."""
    settings = runtime.settings
    try:
        runtime.slack.auth_test()
    except SlackApiError as exc:
        raise LexiBotError(checks.slack_refusal(settings, exc)) from None
    if settings.slack_app_token is not None:
        accepted, line = checks.check_app_token(settings, checks.DEFAULT_TIMEOUT)
        if not accepted:
            raise LexiBotError(line)
    for channel, source in checks.channel_sources(settings, runtime.policy).items():
        accepted, line = checks.check_channel(runtime.slack, channel, source)
        if not accepted:
            raise LexiBotError(f"announcement {line}" if line.startswith("channel ") else line)


# --- check, migrate, sandbox ----------------------------------------------------------------------


def cmd_check(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Check each credential against the real service and print what to fix."""
    if load_settings(environ, require=()).multi_workspace:
        raise ConfigError(
            "`lexi-bot check` checks single-workspace mode's credentials; multi-workspace mode (SLACK_CLIENT_ID, "
            "SLACK_CLIENT_SECRET and LEXI_ENCRYPTION_KEYS set) has none of its own to check yet"
        )
    if args.sandbox:  # configuration errors first: a sandbox started for nothing only adds noise
        load_settings(environ, require=("slack",))
    sandbox = _start_sandbox() if args.sandbox else None
    overrides = {"lexi_api_url": sandbox.url, "lexi_api_key": sandbox.api_key} if sandbox else {}
    try:
        settings = load_settings(environ, require=("slack",) if sandbox else ("lexi", "slack"), **overrides)
        with _quiet(_SLACK_SDK_LOGGER):  # a line per check says it; slack_sdk's own errors would repeat it
            results = checks.run_checks(settings, args.timeout)
    finally:
        if sandbox is not None:
            sandbox.stop()
    for ok, line in results:
        print(f"{'✓' if ok else '✗'} {line}")
    failed = sum(1 for ok, _ in results if not ok)
    print(
        "All checks passed." if not failed else f"{failed} check(s) failed — fix them and run `lexi-bot check` again."
    )
    return 0 if not failed else 1


def cmd_migrate(_args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Upgrade the database to the latest revision."""
    settings = load_settings(environ, require=())
    setup_logging(settings.log_level, settings.secrets(), settings.log_format)
    require_usable_database_url(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with database_errors(settings.database_url):
            before = migrate.current(engine)
            migrate.upgrade(engine)
            after = migrate.current(engine)
    finally:
        engine.dispose()
    if before == after:
        change = " (already up to date)"
    else:
        change = " (from an empty database)" if before is None else f" (was {before})"
    print(f"database at revision {after}{change}")
    return 0


def cmd_webhooks(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Register, list or delete LeadLex webhooks."""
    from bot.core.webhooks import TASK_EVENTS

    settings = load_settings(environ, require=("lexi",))
    if settings.multi_workspace:
        raise ConfigError(
            "`lexi-bot webhooks` manages the webhook of single-workspace mode's LEXI_API_KEY; in multi-workspace "
            "mode each workspace's webhook is registered when it connects LeadLex"
        )
    if settings.lexi_api_key is None:  # load_settings required it; this tells the type checker
        raise ConfigError("LEXI_API_KEY is not set")
    lexi = LexiClient(settings.lexi_api_url, settings.lexi_api_key.get_secret_value(), attempts=2, max_wait=5)
    try:
        if args.webhooks_command == "register":
            if not args.url.rstrip("/").endswith("/lexi/webhooks"):
                print("warning: the bot receives deliveries at /lexi/webhooks; check the URL", file=sys.stderr)
            hook = lexi.create_webhook(args.url, list(TASK_EVENTS), args.description)
            print(f"Webhook {hook.get('id')} registered for {hook.get('url')} ({', '.join(hook.get('events', []))}).")
            print("Its signing secret is shown only this once. Add it to the bot's settings and restart the bot:")
            print(f"  LEXI_WEBHOOK_SECRET={hook.get('secret')}")
            print("With webhooks on, the bot announces tasks at once and polls only to reconcile (about hourly).")
        elif args.webhooks_command == "list":
            hooks = lexi.list_webhooks()
            if not hooks:
                print("No webhooks are registered.")
            for hook in hooks:
                state = "active" if hook.get("active", True) else "inactive"
                print(f"{hook.get('id')}  {state:8}  {hook.get('url')}  {', '.join(hook.get('events', []))}")
        else:
            lexi.delete_webhook(args.webhook_id)
            print(f"Webhook {args.webhook_id} deleted.")
    except (InvalidKey, PermissionDenied) as exc:
        print(f"lexi-bot: {exc}", file=sys.stderr)
        return 1
    except LexiError as exc:
        print(f"lexi-bot: {checks.lexi_trouble(settings, exc, 10.0)}", file=sys.stderr)
        return 1
    finally:
        lexi.close()
    return 0


def cmd_policy(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Validate the policy file and print, per task type, what will happen."""
    from bot.core.policy import describe, load_policy

    overrides = {"policy_file": args.file} if args.file else {}
    settings = load_settings(environ, require=(), **overrides)
    if not settings.policy_file:
        if settings.slack_channel is None:
            raise ConfigError("no policy file to check: give one (lexi-bot policy check FILE) or set LEXI_POLICY_FILE")
        for line in describe(settings.policy()):
            print(line)
        return 0
    # Validating a file needs no Slack settings: without SLACK_CHANNEL, its name stands in for the channel.
    default = settings.slack_channel or _UNSET_CHANNEL
    policy = load_policy(settings.policy_file, channel=default, approvers=settings.lexi_approvers)
    for line in describe(policy):
        print(line)
    if policy.default.channel != default:
        print(
            f"Types without a channel of their own are announced in the default channel {policy.default.channel} "
            f"(policy file {Path(policy.source).name}, defaults.channel)."
        )
    elif settings.slack_channel:
        print(f"Types without a channel of their own are announced in the default channel {default} (SLACK_CHANNEL).")
    else:
        print(
            "SLACK_CHANNEL is not set here: types without a channel of their own will use SLACK_CHANNEL "
            "(shown as SLACK_CHANNEL above), which the bot needs to run."
        )
    return 0


#: What `policy check` shows for the default channel when SLACK_CHANNEL is not set.
_UNSET_CHANNEL = "SLACK_CHANNEL"


def cmd_audit(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Write the audit trail to standard output as CSV or JSON."""
    import csv
    import json

    from bot.lexi.models import parse_time

    since = None
    if args.since:
        text = args.since if "T" in args.since else f"{args.since}T00:00:00Z"
        since = parse_time(text)
        if since is None:
            raise ConfigError(f"--since {args.since!r} is not a date such as 2026-11-01 or 2026-11-01T09:00Z")
    settings = load_settings(environ, require=())
    workspace = _audited_workspace(settings, args.workspace)
    store = _open_store(settings, "nothing to audit")
    try:
        with database_errors(settings.database_url):
            events = (store.scoped(workspace) if workspace else store).audit_events(since)
    finally:
        store.close()
    if args.format == "json":
        json.dump(events, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        writer = csv.DictWriter(sys.stdout, fieldnames=["at", "task_id", "event", "actor", "surface", "detail"])
        writer.writeheader()
        writer.writerows({key: csv_cell(value) for key, value in event.items()} for event in events)
    return 0


def _audited_workspace(settings: Settings, workspace: str | None) -> str | None:
    """The workspace whose audit trail to export: required in multi-workspace mode, refused in single."""
    if not settings.multi_workspace:
        if workspace:
            raise ConfigError("--workspace is for multi-workspace mode; this bot serves one workspace: leave it out")
        return None
    if not workspace:
        raise ConfigError(
            "multi-workspace mode keeps an audit trail per workspace: say which with --workspace TEAM_ID "
            "(`lexi-bot workspaces` lists them)"
        )
    if not re.fullmatch(r"[TE][A-Z0-9]{2,31}", workspace):
        raise ConfigError(f"--workspace {clip(workspace, 40)!r} is not a Slack team or organization id (T…, E…)")
    return workspace


def _open_store(settings: Settings, nothing: str) -> Store:
    """The store on the bot's existing database at the latest revision; ConfigError saying what to do otherwise.

    `nothing` says what a missing database means for the command ("nothing to audit").
    """
    require_usable_database_url(settings.database_url)
    missing = sqlite_missing(settings.database_url)
    if missing is not None:  # opening it would leave an empty file behind
        raise ConfigError(
            f"there is no database at {missing} yet, so {nothing}: `lexi-bot run` or `lexi-bot migrate` "
            "creates it (or point DATABASE_URL at the bot's database)"
        )
    store = Store.from_url(settings.database_url)
    try:
        with database_errors(settings.database_url):
            revision = migrate.current(store.engine)
    except BaseException:
        store.close()
        raise
    if revision is None:
        store.close()
        raise ConfigError("the database is empty (no lexi-bot tables yet): run `lexi-bot migrate` first")
    if revision != migrate.head():
        store.close()
        raise ConfigError("the database is not at the latest revision: run `lexi-bot migrate` first")
    return store


# --- keys and workspaces (multi-workspace mode) -------------------------------------------------------


def cmd_keys(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Print a new encryption key, or re-encrypt every stored secret with the first key of LEXI_ENCRYPTION_KEYS."""
    from bot.db.vault import generate_key
    from bot.db.workspaces import Workspaces

    if args.keys_command == "generate":
        print(generate_key())
        return 0
    settings = load_settings(environ, require=())
    setup_logging(settings.log_level, settings.secrets(), settings.log_format)
    vault = settings.vault()  # EncryptionKeysError (a ConfigError) when not set
    store = _open_store(settings, "no secret to re-encrypt")
    try:
        with database_errors(settings.database_url):
            changed = Workspaces(store.engine, vault).rotate(vault)
    finally:
        store.close()
    first = f"the first key of LEXI_ENCRYPTION_KEYS (fingerprint {vault.fingerprints[0]})"
    if changed:
        print(f"{changed} stored secret(s) re-encrypted with {first}.")
        if len(vault.fingerprints) > 1:
            print("Every secret now uses it: the other keys can be removed from LEXI_ENCRYPTION_KEYS.")
    else:
        print(f"Nothing to re-encrypt: every stored secret already uses {first}.")
    return 0


def cmd_workspaces(_args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """One line per workspace of the registry: id, state, channel, last poll, budget left, last error."""
    from bot.db.workspaces import Workspaces

    settings = load_settings(environ, require=())
    store = _open_store(settings, "no workspace")
    try:
        with database_errors(settings.database_url):
            found = Workspaces(store.engine, None).all()
    finally:
        store.close()
    if not found:
        print("No workspace has installed the app.")
        return 0
    for workspace in found:
        polled = workspace.last_poll_at.strftime("%Y-%m-%dT%H:%M:%SZ") if workspace.last_poll_at else "never"
        budget = "?" if workspace.budget_remaining is None else str(workspace.budget_remaining)
        error = _one_line(workspace.last_error) if workspace.last_error else "-"
        kind = " (org)" if workspace.is_enterprise_install else ""
        print(
            f"{workspace.id}{kind}  {workspace.state:11}  channel {workspace.channel or '-'}  "
            f"last poll {polled}  budget left {budget}  last error {error}"
        )
    return 0


def cmd_workspace(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Purge an uninstalled workspace: its scoped rows, its Slack installation rows, then its registry row."""
    from bot.db.workspaces import Workspaces

    workspace_id = args.workspace_id.strip()
    if not workspace_id:  # '' is single-workspace mode's data, never purged by this command
        raise ConfigError("give the Slack team id (T…) or Enterprise Grid org id (E…) of the workspace to purge")
    settings = load_settings(environ, require=())
    setup_logging(settings.log_level, settings.secrets(), settings.log_format)
    store = _open_store(settings, "nothing to purge")
    try:
        with database_errors(settings.database_url):
            registry = Workspaces(store.engine, None)
            found = registry.get(workspace_id)
            if found is None and not args.force:
                raise LexiBotError(
                    f"workspace {workspace_id} is not in the registry (see `lexi-bot workspaces`); "
                    "--force purges whatever else is stored under that id"
                )
            if found is not None and found.state != "uninstalled" and not args.force:
                raise LexiBotError(
                    f"workspace {workspace_id} is {found.state}, not uninstalled: the app is still in that Slack "
                    "workspace. Purge it once it is uninstalled, or give --force to purge it anyway"
                )
            data = store.purge_workspace(workspace_id)
            installation = registry.purge_installations(workspace_id)
            registry_rows = int(registry.purge(workspace_id))
    finally:
        store.close()
    deleted = {**data, **installation, "workspaces": registry_rows}
    total = sum(deleted.values())
    print(f"Purged workspace {workspace_id}: {total} row(s) deleted.")
    for table, count in deleted.items():
        print(f"  {table}: {count}")
    return 0


def _one_line(text: str, limit: int = 120) -> str:
    """Text on one line, at most `limit` characters (a stored error may hold anything)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


#: First characters that make a spreadsheet read a cell as a formula (OWASP: CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: a leading quote defuses what would start a formula.

    Task ids, actors and notes come from LeadLex and from what people type, so any of them may be hostile.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return f"'{value}"
    return value


def cmd_sandbox(args: argparse.Namespace, _environ: Mapping[str, str]) -> int:
    """Serve the LeadLex sandbox in the foreground."""
    from bot.dev import sandbox

    argv = ["--host", args.host, "--port", str(args.port), "--complete-after", str(args.complete_after)]
    if args.generate_every:
        argv += ["--generate-every", str(args.generate_every)]
    if args.workspaces:
        argv += ["--workspaces", str(args.workspaces)]
    if args.plan:
        argv += ["--plan", args.plan]
    return int(sandbox.main(argv) or 0)


def cmd_demo(args: argparse.Namespace, _environ: Mapping[str, str]) -> int:
    """Run the sandbox, a Slack stand-in and the bot in one process, and serve a Slack-like page for them."""
    from bot.dev.demo import run_demo

    return run_demo(args.host, args.port, open_browser=args.open, allow_remote=args.allow_remote)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
