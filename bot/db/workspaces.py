"""The workspace registry of multi-workspace mode: one row per installed Slack workspace (table `workspaces`).

A workspace goes through three states:

- `installed`: the app is in the Slack workspace (the OAuth install flow called `installed`); nothing to serve yet.
- `connected`: a LeadLex key AND an announcement channel are set, in either order (`connect_lexi`, `configure`):
  only then can the bot poll and announce for it, so only then is it connected. Clearing the channel again, or
  `uninstalled`, leaves `connected`.
- `uninstalled`: the app was removed. Its LeadLex key and webhook secret are deleted (and its webhook path
  replaced, so that old deliveries find nothing); its configuration (channel, approvers, policy, LeadLex URL) is
  kept for a reinstall. Its tasks and audit trail stay in the scoped store until `purge` / `lexi-bot workspace purge`.

Secrets (the LeadLex key, the webhook signing secret) are stored as Fernet tokens made by the vault (bot.db.vault).
`Workspace`, what reads return, holds no secret, only whether one is set; `lexi_key` and `webhook_secret` are the
only ways out, decrypted. No message this module makes holds a secret.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Engine, Row, and_, delete, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from bot.db.models import CONNECTED, SLACK_BOTS, SLACK_INSTALLATIONS, Base
from bot.db.store import WORKSPACE_MAX, utcnow
from bot.db.vault import SETTING, Vault
from bot.errors import EncryptionKeysError, LexiBotError, UnreadableSecret

__all__ = ["UnknownWorkspace", "Workspace", "Workspaces"]

WORKSPACES = Base.metadata.tables["workspaces"]
_W = WORKSPACES.c

#: The columns a Workspace is made of: every column but the two secrets (whether each is set is read instead).
_PUBLIC = [column for column in WORKSPACES.c if column.name not in ("lexi_key", "webhook_secret")]
_READ = [*_PUBLIC, _W.lexi_key.is_not(None).label("has_lexi_key"), _W.webhook_secret.is_not(None).label("has_secret")]

#: A channel id (C…, G…), as SLACK_CHANNEL is checked (bot.config).
_CHANNEL = re.compile(r"[CG][A-Z0-9]{2,31}")
#: An approver: a Slack user (U…, W…) or a user group (S…).
_APPROVER = re.compile(r"[UWS][A-Z0-9]{2,63}")
_URL = re.compile(r"https?://[^\s/]+\S*")
#: Random bytes in a webhook path (URL-safe base64: 43 characters).
_PATH_BYTES = 32
#: The longest last_error kept.
ERROR_MAX = 500


class _Unset:
    """The marker of an argument not given (None is a value: it clears the setting)."""

    def __repr__(self) -> str:
        """As it reads in a signature."""
        return "UNSET"


UNSET: Final = _Unset()


class UnknownWorkspace(LexiBotError):
    """Raised when a workspace is not in the registry (never installed, or purged)."""


@dataclass(frozen=True)
class Workspace:
    """One workspace of the registry as read: everything but its secrets, of which only whether each is set."""

    id: str
    enterprise_id: str | None
    is_enterprise_install: bool
    installer: str | None
    state: str
    lexi_api_url: str | None
    has_lexi_key: bool
    channel: str | None
    approvers: tuple[str, ...]
    policy_yaml: str | None
    webhook_id: str | None
    has_webhook_secret: bool
    #: Not a secret (deliveries are signed), but not worth printing either: it is what an outsider would guess.
    webhook_path: str = field(repr=False)
    next_poll_at: datetime | None
    last_poll_at: datetime | None
    last_error: str | None
    budget_remaining: int | None
    created_at: datetime
    #: When its state or configuration last changed (a poll does not change it): the version replicas compare.
    updated_at: datetime


def _workspace(row: Row[Any]) -> Workspace:
    """A Workspace from a row of _READ."""
    values = row._asdict()
    return Workspace(
        id=values["id"],
        enterprise_id=values["enterprise_id"],
        is_enterprise_install=bool(values["is_enterprise_install"]),
        installer=values["installer"],
        state=values["state"],
        lexi_api_url=values["lexi_api_url"],
        has_lexi_key=bool(values["has_lexi_key"]),
        channel=values["channel"],
        approvers=tuple(values["approvers"] or ()),
        policy_yaml=values["policy_yaml"],
        webhook_id=values["webhook_id"],
        has_webhook_secret=bool(values["has_secret"]),
        webhook_path=values["webhook_path"],
        next_poll_at=values["next_poll_at"],
        last_poll_at=values["last_poll_at"],
        last_error=values["last_error"],
        budget_remaining=values["budget_remaining"],
        created_at=values["created_at"],
        updated_at=values["updated_at"],
    )


def _check_id(workspace_id: str) -> str:
    """A workspace id fit for the table (a Slack team or org id); ValueError otherwise."""
    if not isinstance(workspace_id, str) or not 0 < len(workspace_id) <= WORKSPACE_MAX:
        raise ValueError(f"a workspace id is a non-empty string of at most {WORKSPACE_MAX} characters")
    return workspace_id


def _new_path() -> str:
    """An unguessable token for a webhook delivery URL."""
    return secrets.token_urlsafe(_PATH_BYTES)


class Workspaces:
    """The registry on an engine (migrated to 0010 or later); secrets go in and out through `vault`.

    Without a vault (LEXI_ENCRYPTION_KEYS not set) the registry can be read and purged, but no secret can be
    stored or read: those methods raise EncryptionKeysError.
    """

    def __init__(self, engine: Engine, vault: Vault | None, *, clock: Callable[[], datetime] = utcnow) -> None:
        """Use this engine (the store's) and vault; `clock` gives the time stamps."""
        self.engine = engine
        self._vault = vault
        self._now = clock

    def __repr__(self) -> str:
        """The registry by its database and vault fingerprints (never a key)."""
        return f"Workspaces({self.engine.url.render_as_string(hide_password=True)}, {self._vault!r})"

    @property
    def vault(self) -> Vault:
        """The vault; EncryptionKeysError when none was given."""
        if self._vault is None:
            raise EncryptionKeysError(f"{SETTING} is not set: stored secrets cannot be encrypted or read without it")
        return self._vault

    # --- install and uninstall ----------------------------------------------------------------------

    def installed(
        self, workspace_id: str, *, enterprise_id: str | None, is_enterprise_install: bool, installer: str | None
    ) -> Workspace:
        """Record an install (idempotent): a new row in `installed`, or the existing row updated.

        A reinstall keeps the configuration (channel, approvers, policy, LeadLex URL), and a workspace that is
        installed or connected keeps its state (a reinstall for new scopes changes nothing else); an uninstalled
        one becomes `installed` again and needs a LeadLex key before it is served.
        """
        _check_id(workspace_id)
        now = self._now()
        who = {"enterprise_id": enterprise_id, "is_enterprise_install": is_enterprise_install, "installer": installer}
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(WORKSPACES).values(
                        id=workspace_id,
                        state="installed",
                        approvers=[],
                        webhook_path=_new_path(),
                        created_at=now,
                        updated_at=now,
                        **who,
                    )
                )
        except IntegrityError:  # installed before (or by a concurrent request): update it
            with self.engine.begin() as conn:
                conn.execute(update(WORKSPACES).where(_W.id == workspace_id).values(updated_at=now, **who))
                conn.execute(
                    update(WORKSPACES).where(_W.id == workspace_id, _W.state == "uninstalled").values(state="installed")
                )
        return self.require(workspace_id)

    def uninstalled(self, workspace_id: str) -> Workspace:
        """The app was removed: state `uninstalled`, the LeadLex key and webhook deleted, configuration kept.

        The webhook path is replaced, so that deliveries to the old URL find no workspace.
        """
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(WORKSPACES)
                .where(_W.id == workspace_id)
                .values(
                    state="uninstalled",
                    lexi_key=None,
                    webhook_id=None,
                    webhook_secret=None,
                    webhook_path=_new_path(),
                    next_poll_at=None,
                    updated_at=self._now(),
                )
            ).rowcount
        if not changed:
            raise UnknownWorkspace(f"workspace {workspace_id} is not in the registry")
        return self.require(workspace_id)

    def purge(self, workspace_id: str) -> bool:
        """Delete the workspace's row itself (its other data: Store.purge_workspace); whether there was one."""
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(WORKSPACES).where(_W.id == workspace_id)).rowcount)

    def purge_installations(self, workspace_id: str) -> dict[str, int]:
        """Delete slack_sdk's installation and bot rows of a workspace, in one transaction; how many each table lost.

        A team install is stored under its team id; an org-wide install under its enterprise id with
        is_enterprise_install set. Every client id's rows go (the app's credentials may have changed since).
        """
        deleted: dict[str, int] = {}
        with self.engine.begin() as conn:
            for table in (SLACK_INSTALLATIONS, SLACK_BOTS):
                ours = or_(
                    table.c.team_id == workspace_id,
                    and_(table.c.enterprise_id == workspace_id, table.c.is_enterprise_install.is_(True)),
                )
                deleted[table.name] = conn.execute(delete(table).where(ours)).rowcount
        return deleted

    # --- reads --------------------------------------------------------------------------------------

    def get(self, workspace_id: str) -> Workspace | None:
        """The workspace, or None when it is not in the registry."""
        with self.engine.connect() as conn:
            row = conn.execute(select(*_READ).where(_W.id == workspace_id)).first()
        return _workspace(row) if row is not None else None

    def require(self, workspace_id: str) -> Workspace:
        """The workspace; UnknownWorkspace when it is not in the registry."""
        found = self.get(workspace_id)
        if found is None:
            raise UnknownWorkspace(f"workspace {workspace_id} is not in the registry")
        return found

    def all(self) -> list[Workspace]:
        """Every workspace, by id."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_READ).order_by(_W.id)).all()
        return [_workspace(row) for row in rows]

    def due(self, now: datetime | None = None, *, limit: int = 100) -> list[Workspace]:
        """Connected workspaces whose next poll is due (or was never planned), soonest first (ix_workspaces_due)."""
        moment = now or self._now()
        query = (
            select(*_READ)
            .where(text(CONNECTED), (_W.next_poll_at <= moment) | _W.next_poll_at.is_(None))
            .order_by(_W.next_poll_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_workspace(row) for row in rows]

    def claim_due(self, limit: int, *, lease: timedelta, now: datetime | None = None) -> list[Workspace]:
        """Claim up to `limit` due workspaces (as `due` finds them) for one poll each, in one short transaction.

        A claim moves a workspace's next_poll_at to `now + lease`, so no other scheduler finds it due until the
        lease ends: a scheduler that dies mid-poll leaves its workspaces due again then. On PostgreSQL the rows are
        read FOR UPDATE SKIP LOCKED, so concurrent claims by other replicas skip them instead of waiting or taking
        them twice; SQLite has one process (bot.db.guard) and one scheduler in it. The workspaces are returned as
        they were read, before the claim: their next_poll_at is when each poll was due (None: never planned).
        """
        if limit <= 0:
            return []
        moment = now or self._now()
        # Two range scans of ix_workspaces_due (never planned first, then the due ones by time): one query with
        # `<= now OR IS NULL` can only filter the index, reading every connected workspace when few are due.
        claimed: list[Workspace] = []
        with self.engine.begin() as conn:
            for due in (_W.next_poll_at.is_(None), _W.next_poll_at <= moment):
                if len(claimed) < limit:
                    query = (
                        select(*_READ)
                        .where(text(CONNECTED), due)
                        .order_by(_W.next_poll_at)
                        .limit(limit - len(claimed))
                        .with_for_update(skip_locked=True)
                    )
                    claimed += [_workspace(row) for row in conn.execute(query).all()]
            if claimed:
                conn.execute(
                    update(WORKSPACES).where(_W.id.in_([w.id for w in claimed])).values(next_poll_at=moment + lease)
                )
        return claimed

    def renew_claims(self, claims: Mapping[str, datetime], until: datetime) -> set[str]:
        """Extend the claims still held to `until`, in one transaction; the ids of the workspaces renewed.

        `claims` maps each workspace to the next_poll_at its holder's claim (or last renewal) wrote: a row whose
        next_poll_at is no longer that was claimed by another replica after the lease ran out, or its poll was
        recorded, and is left alone.
        """
        renewed: set[str] = set()
        with self.engine.begin() as conn:
            for workspace_id, held in claims.items():
                moved = conn.execute(
                    update(WORKSPACES).where(_W.id == workspace_id, _W.next_poll_at == held).values(next_poll_at=until)
                )
                if moved.rowcount == 1:
                    renewed.add(workspace_id)
        return renewed

    def next_due(self) -> datetime | None:
        """When the soonest connected workspace's poll is due (the past when one was never planned); None: none."""
        with self.engine.connect() as conn:
            never = conn.execute(select(_W.id).where(text(CONNECTED), _W.next_poll_at.is_(None)).limit(1)).first()
            if never is not None:
                return datetime.min.replace(tzinfo=UTC)
            soonest: datetime | None = conn.execute(
                select(func.min(_W.next_poll_at)).where(text(CONNECTED))
            ).scalar_one()
        return soonest

    def by_webhook_path(self, path: str) -> Workspace | None:
        """The workspace whose webhook delivery URL ends in `path`, or None."""
        if not path or len(path) > _W.webhook_path.type.length:  # type: ignore[attr-defined]
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(*_READ).where(_W.webhook_path == path)).first()
        return _workspace(row) if row is not None else None

    # --- LeadLex connection and configuration -------------------------------------------------------

    def connect_lexi(self, workspace_id: str, api_key: str, api_url: str | None = None) -> Workspace:
        """Store the LeadLex key (encrypted) and API URL (None: the default); connected once a channel is set too.

        A different key or URL may be another LeadLex workspace: the webhook registered with the old one is
        forgotten (its deliveries are refused from then on, their secret gone) so that one is registered with the
        new key (bot.tenants.Tenants.ensure_webhook). Refused (UnknownWorkspace, ValueError) for a workspace not
        installed; the key is never in the message.
        """
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("a LeadLex key is a non-empty string")
        if api_url is not None and not _URL.fullmatch(api_url):
            raise ValueError("the LeadLex API URL must be an http(s) URL")
        token = self.vault.encrypt(api_key.strip())
        with self.engine.begin() as conn:
            self._require_installed(conn, workspace_id)
            old = conn.execute(
                select(_W.lexi_key, _W.lexi_api_url, _W.webhook_id, _W.webhook_secret).where(_W.id == workspace_id)
            ).one()
            values: dict[str, object] = {"lexi_key": token, "lexi_api_url": api_url, "updated_at": self._now()}
            same = old.lexi_key is not None and old.lexi_api_url == api_url and self._same(old.lexi_key, api_key)
            if (old.webhook_id is not None or old.webhook_secret is not None) and not same:
                values.update(webhook_id=None, webhook_secret=None)
            conn.execute(update(WORKSPACES).where(_W.id == workspace_id).values(**values))
            self._settle(conn, workspace_id)
        return self.require(workspace_id)

    def lexi_key(self, workspace_id: str) -> str | None:
        """The workspace's LeadLex key, decrypted (the only way it leaves the registry); None when not set."""
        return self._secret(workspace_id, _W.lexi_key)

    def configure(
        self,
        workspace_id: str,
        *,
        channel: str | _Unset | None = UNSET,
        approvers: Sequence[str] | _Unset = UNSET,
        policy_yaml: str | _Unset | None = UNSET,
    ) -> Workspace:
        """Change what is given (None clears the channel or the policy); connected once a key and a channel are.

        The channel is an id (C…, G…); approvers are user ids (U…, W…) and user-group ids (S…), empty: anyone in
        the channel. ValueError naming what is wrong; UnknownWorkspace / ValueError for a workspace not installed.
        """
        values: dict[str, object] = {}
        if not isinstance(channel, _Unset):
            if channel is not None and not _CHANNEL.fullmatch(channel):
                raise ValueError("the channel must be a channel id such as C0123ABCD (not a #name)")
            values["channel"] = channel
        if not isinstance(approvers, _Unset):
            if isinstance(approvers, str):
                raise TypeError("approvers is a list of ids, not one string")
            bad = [a for a in approvers if not isinstance(a, str) or not _APPROVER.fullmatch(a)]
            if bad:
                raise ValueError(
                    "approvers must be Slack user ids (U…, W…) or user-group ids (S…), "
                    f"not {', '.join(map(repr, bad[:3]))}"
                )
            values["approvers"] = list(dict.fromkeys(approvers))
        if not isinstance(policy_yaml, _Unset):
            values["policy_yaml"] = policy_yaml
        with self.engine.begin() as conn:
            self._require_installed(conn, workspace_id)
            conn.execute(update(WORKSPACES).where(_W.id == workspace_id).values(updated_at=self._now(), **values))
            self._settle(conn, workspace_id)
        return self.require(workspace_id)

    # --- webhooks -----------------------------------------------------------------------------------

    def set_webhook(self, workspace_id: str, webhook_id: str, secret: str) -> str:
        """Store the workspace's LeadLex webhook (its signing secret encrypted); its delivery path.

        The path was made at install (`Workspace.webhook_path`: register the webhook with the URL ending in it),
        and stays the same until the workspace is uninstalled.
        """
        if not secret:
            raise ValueError("a webhook signing secret is a non-empty string")
        token = self.vault.encrypt(secret)
        with self.engine.begin() as conn:
            self._require_installed(conn, workspace_id)
            conn.execute(
                update(WORKSPACES)
                .where(_W.id == workspace_id)
                .values(webhook_id=webhook_id, webhook_secret=token, updated_at=self._now())
            )
            path = conn.execute(select(_W.webhook_path).where(_W.id == workspace_id)).scalar_one()
        return str(path)

    def webhook_secret(self, workspace_id: str) -> str | None:
        """The workspace's webhook signing secret, decrypted; None when not set."""
        return self._secret(workspace_id, _W.webhook_secret)

    # --- polling --------------------------------------------------------------------------------------

    def polled(
        self,
        workspace_id: str,
        *,
        next_poll_at: datetime | None,
        budget_remaining: int | None = None,
        error: str | None = None,
    ) -> None:
        """Record a poll: when it ran (now), when the next is due, the budget left and the error, if any.

        `updated_at` is left alone: it changes with the configuration only, which replicas watch (bot.tenants).
        """
        with self.engine.begin() as conn:
            conn.execute(
                update(WORKSPACES)
                .where(_W.id == workspace_id)
                .values(
                    last_poll_at=self._now(),
                    next_poll_at=next_poll_at,
                    budget_remaining=budget_remaining,
                    last_error=error[:ERROR_MAX] if error else None,
                )
            )

    # --- key rotation -------------------------------------------------------------------------------

    def rotate(self, vault: Vault) -> int:
        """Re-encrypt every stored secret not made with `vault`'s first key, in one transaction; how many changed.

        Idempotent: a second run changes nothing. A secret no key of `vault` reads stops it all (UnreadableSecret,
        naming the workspace, never the secret); nothing is changed then.
        """
        changed = 0
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(_W.id, _W.lexi_key, _W.webhook_secret)
                .where(_W.lexi_key.is_not(None) | _W.webhook_secret.is_not(None))
                .order_by(_W.id)
                .with_for_update()
            ).all()
            for workspace_id, lexi_key, webhook_secret in rows:
                values: dict[str, str] = {}
                for name, token in (("lexi_key", lexi_key), ("webhook_secret", webhook_secret)):
                    if token is not None and not vault.is_current(token):
                        values[name] = _rotated(vault, token, workspace_id, name)
                if values:
                    conn.execute(update(WORKSPACES).where(_W.id == workspace_id).values(**values))
                    changed += len(values)
        return changed

    # --- helpers ------------------------------------------------------------------------------------

    def _same(self, token: str, secret: str) -> bool:
        """Whether a stored secret is `secret` (one no key of the vault reads is not)."""
        try:
            return secrets.compare_digest(self.vault.decrypt(token).encode(), secret.strip().encode())
        except UnreadableSecret:
            return False

    def _secret(self, workspace_id: str, column: Any) -> str | None:
        """A secret column's value, decrypted; None when not set."""
        with self.engine.connect() as conn:
            token = conn.execute(select(column).where(_W.id == workspace_id)).scalar_one_or_none()
        if token is None:
            return None
        return self.vault.decrypt(token)

    @staticmethod
    def _require_installed(conn: Any, workspace_id: str) -> None:
        """UnknownWorkspace when not in the registry; ValueError when uninstalled (a reinstall comes first)."""
        state = conn.execute(select(_W.state).where(_W.id == workspace_id)).scalar_one_or_none()
        if state is None:
            raise UnknownWorkspace(f"workspace {workspace_id} is not in the registry")
        if state == "uninstalled":
            raise ValueError(f"workspace {workspace_id} is uninstalled: it must be installed again first")

    @staticmethod
    def _settle(conn: Any, workspace_id: str) -> None:
        """Connected exactly when both a LeadLex key and a channel are set (for an installed workspace)."""
        ready = _W.lexi_key.is_not(None) & _W.channel.is_not(None)
        base = update(WORKSPACES).where(_W.id == workspace_id)
        conn.execute(base.where(_W.state == "installed", ready).values(state="connected"))
        conn.execute(base.where(_W.state == "connected", ~ready).values(state="installed"))


def _rotated(vault: Vault, token: str, workspace_id: str, name: str) -> str:
    """The token re-encrypted with the vault's first key; UnreadableSecret naming where it is stored."""
    try:
        return vault.rotate(token)
    except UnreadableSecret as exc:
        raise UnreadableSecret(f"workspace {workspace_id}'s {name.replace('_', ' ')}: {exc}") from None
