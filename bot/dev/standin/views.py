"""Modals and App Home in the Slack stand-in: trigger_ids, views.open/push/update/publish, what was shown."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from bot.dev.standin.blockkit import validate_view
from bot.dev.standin.protocol import ApiError, Args, invalid_argument
from bot.dev.standin.records import View

#: Seconds a trigger_id stays usable.
TRIGGER_TTL = 3.0


@dataclass
class _Trigger:
    """A trigger_id handed out: whose it is, when it was issued, whether a view consumed it."""

    user: str
    issued_at: float
    used: bool = False


@dataclass
class _ViewState:
    """The current state of one view id: the view as last answered, its user, whether it is a Home tab."""

    view: dict[str, Any]
    user: str
    home: bool


@dataclass(frozen=True)
class AppIdentity:
    """The ids Slack stamps on every view the app shows."""

    team_id: str
    app_id: str
    bot_id: str


class Views:
    """The views of one app: single-use trigger_ids, open modals, Home tabs, and a log of what was shown."""

    def __init__(
        self,
        identity: AppIdentity,
        users: Collection[str],
        clock: Callable[[], float],
        next_id: Callable[[], int],
    ) -> None:
        self.views: list[View] = []
        self.home_views: dict[str, dict[str, Any]] = {}
        self._identity = identity
        self._users = users
        self._clock = clock
        self._next_id = next_id
        self._states: dict[str, _ViewState] = {}
        self._home_ids: dict[str, str] = {}
        self._triggers: dict[str, _Trigger] = {}
        self.methods: dict[str, Callable[[Args], dict[str, Any]]] = {
            "views.open": self._open,
            "views.push": self._push,
            "views.update": self._update,
            "views.publish": self._publish,
        }

    def issue_trigger(self, user: str) -> str:
        """Return a new single-use trigger_id for `user`, valid for TRIGGER_TTL seconds."""
        trigger_id = f"{self._next_id()}.{int(self._clock())}.{secrets.token_hex(16)}"
        self._triggers[trigger_id] = _Trigger(user, self._clock())
        return trigger_id

    def _exchange(self, trigger_id: str | None) -> str:
        """Consume a trigger_id and return its user; unknown or used → invalid, older than 3 s → expired."""
        trigger = self._triggers.get(trigger_id or "")
        if trigger is None or trigger.used:
            raise ApiError("invalid_trigger_id")
        if self._clock() - trigger.issued_at > TRIGGER_TTL:
            raise ApiError("expired_trigger_id")
        trigger.used = True
        return trigger.user

    @staticmethod
    def _view(args: Args, kind: str) -> dict[str, Any]:
        """Read the `view` argument and check it is a valid view of `kind` ("modal" or "home")."""
        view = args.structured("view", "invalid_arguments")
        problem = validate_view(view)
        if problem:
            raise ApiError("invalid_arguments", messages=[problem])
        if view["type"] != kind:
            raise invalid_argument("view/type", f"must be {kind}")
        return dict(view)

    def _answer(self, view: dict[str, Any], view_id: str, root_view_id: str) -> dict[str, Any]:
        """Complete a view the way Slack answers it: id, team, empty state, a fresh hash, app and bot ids."""
        return {
            **view,
            "id": view_id,
            "team_id": self._identity.team_id,
            "state": {"values": {}},
            "hash": f"{int(self._clock())}.{secrets.token_hex(4)}",
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "root_view_id": root_view_id,
            "app_id": self._identity.app_id,
            "bot_id": self._identity.bot_id,
        }

    def _new_modal(self, args: Args, kind: str) -> dict[str, Any]:
        """Open (kind "open") or push (kind "push") a modal, consuming the trigger_id."""
        view = self._view(args, "modal")
        external_id = view.get("external_id")
        if external_id and any(s.view["external_id"] == external_id for s in self._states.values()):
            raise ApiError("duplicate_external_id")
        trigger_id = args.text("trigger_id")
        user = self._exchange(trigger_id)
        view_id = f"V{self._next_id():08d}"
        answered = self._answer(view, view_id, view_id)
        self._states[view_id] = _ViewState(answered, user, home=False)
        self.views.append(View(view_id, trigger_id, user, answered, kind))
        return {"view": answered}

    def _open(self, args: Args) -> dict[str, Any]:
        """views.open: open a modal for the trigger's user."""
        return self._new_modal(args, "open")

    def _push(self, args: Args) -> dict[str, Any]:
        """views.push: push a modal onto the trigger's user's stack."""
        return self._new_modal(args, "push")

    def _update(self, args: Args) -> dict[str, Any]:
        """views.update: replace a view found by view_id or external_id, refusing a stale hash."""
        view_id, external_id = args.text("view_id"), args.text("external_id")
        state = self._states.get(view_id or "")
        if state is None and external_id:
            state = next((s for s in self._states.values() if s.view["external_id"] == external_id), None)
        if state is None:
            raise ApiError("not_found")
        view = self._view(args, "home" if state.home else "modal")
        view.setdefault("external_id", state.view["external_id"])
        expected = args.text("hash")
        if expected and expected != state.view["hash"]:
            raise ApiError("hash_conflict")
        answered = self._answer(view, state.view["id"], state.view["root_view_id"])
        state.view = answered
        if state.home:
            self.home_views[state.user] = answered
        else:
            self.views.append(View(answered["id"], None, state.user, answered, "update"))
        return {"view": answered}

    def _publish(self, args: Args) -> dict[str, Any]:
        """views.publish: set a user's Home tab (its view id stays the same across publishes)."""
        user = args.text("user_id") or ""
        if user not in self._users:
            raise ApiError("user_not_found")
        view = self._view(args, "home")
        if user not in self._home_ids:
            self._home_ids[user] = f"V{self._next_id():08d}"
        view_id = self._home_ids[user]
        state = self._states.get(view_id)
        expected = args.text("hash")
        if expected and state is not None and expected != state.view["hash"]:
            raise ApiError("hash_conflict")
        answered = self._answer(view, view_id, view_id)
        self._states[view_id] = _ViewState(answered, user, home=True)
        self.home_views[user] = answered
        return {"view": answered}
