"""The database a command could not use, in one sentence: which server, database and user (never the password)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from bot.db.guard import sqlite_path
from bot.errors import LexiBotError


class DatabaseError(LexiBotError):
    """Raised when the database cannot be reached or refuses the bot; the message says what to fix."""


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn a driver's failure to connect (or to run) into one DatabaseError sentence naming the database."""
    try:
        yield
    except DBAPIError as exc:
        raise DatabaseError(describe(url, exc)) from None


def describe(url: str, exc: DBAPIError) -> str:
    """What failed and what to do, for a failure of the database at `url`."""
    parsed = make_url(url)
    detail = _detail(str(exc.orig) if exc.orig is not None else str(exc))
    if parsed.password:  # drivers do not print it; make sure of it anyway
        detail = detail.replace(parsed.password, "***")
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if "unable to open database file" in detail:
            return f"cannot open the SQLite database {path}: check that its folder exists and is writable"
        return f"the SQLite database {path} failed: {detail}"
    host = parsed.host or "the local socket"
    user, database = parsed.username or "(default user)", parsed.database or "(default database)"
    server = _Server(
        name=f"PostgreSQL at {host}:{parsed.port or 5432}",
        host=host,
        port=parsed.port or 5432,
        user=user,
        database=database,
        who=f"(database '{database}', user '{user}')",
    )
    known = _unreachable(server, detail.lower()) or _refused(server, detail)
    return known or f"{server.name} {server.who} failed: {detail}"


@dataclass(frozen=True)
class _Server:
    """The PostgreSQL server, database and user a failure is about, as its sentence names them."""

    name: str
    host: str
    port: int
    user: str
    database: str
    who: str


def _unreachable(server: _Server, lowered: str) -> str | None:
    """The sentence for a server that could not be reached (`lowered`: the driver's words), or None."""
    if "connection refused" in lowered:
        return (
            f"could not connect to {server.name} {server.who}: connection refused — is the server running, "
            "and are DATABASE_URL's host and port right?"
        )
    if "translate host name" in lowered or "name or service not known" in lowered or "nodename nor servname" in lowered:
        return (
            f"could not connect to {server.name} {server.who}: host name {server.host} not found"
            " — check DATABASE_URL's host"
        )
    if "timeout expired" in lowered or "timed out" in lowered:
        return (
            f"could not connect to {server.name} {server.who}: no answer"
            " — check DATABASE_URL's host and port and any firewall"
        )
    return None


def _refused(server: _Server, detail: str) -> str | None:
    """The sentence for a server that answered but refused the bot (`detail`: the driver's words), or None."""
    lowered = detail.lower()
    missing = re.search(r'database "([^"]+)" does not exist', detail)
    if missing:
        return (
            f"{server.name} (user '{server.user}'): the database '{missing.group(1)}' does not exist — create it "
            f"(createdb -h {server.host} -p {server.port} -U {server.user} {missing.group(1)}) or fix DATABASE_URL"
        )
    role = re.search(r'role "([^"]+)" does not exist', detail)
    if role:
        return (
            f"{server.name} refused user '{role.group(1)}' (database '{server.database}'): no such role — create it "
            "or put an existing user in DATABASE_URL"
        )
    if "password authentication failed" in lowered:
        return (
            f"{server.name} refused user '{server.user}' (database '{server.database}'): wrong password"
            " — fix it in DATABASE_URL"
        )
    if "no pg_hba.conf entry" in lowered:
        return (
            f"{server.name} does not accept user '{server.user}' from this host {server.who}:"
            " allow it in the server's pg_hba.conf"
        )
    if "permission denied" in lowered:
        return f"{server.name} {server.who}: {detail} — grant the user the rights it needs on that database"
    return None


def _detail(message: str) -> str:
    """The driver's own words, on one line, without the "connection failed: … failed:" preamble."""
    line = " ".join(message.split())
    line = re.sub(r'^connection failed: connection to server at "[^"]*"(?: \([^)]*\))?, port \d+ failed: ', "", line)
    return line.removeprefix("FATAL: ").strip()
