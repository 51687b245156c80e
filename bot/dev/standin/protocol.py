"""How the Slack stand-in reads a call's arguments and answers an error, shared by its Web API modules."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class ApiError(Exception):
    """Raised by a Web API method to answer `{"ok": false, "error": ...}` with an HTTP status and headers."""

    def __init__(
        self,
        error: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        messages: list[str] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = dict(headers or {})
        self.messages = list(messages or [])

    def body(self) -> dict[str, Any]:
        """Return the JSON body Slack sends for this error."""
        body: dict[str, Any] = {"ok": False, "error": self.error}
        if self.messages:
            body["response_metadata"] = {"messages": self.messages}
        return body


def invalid_argument(name: str, problem: str) -> ApiError:
    """Build the invalid_arguments error Slack answers for a malformed argument."""
    return ApiError("invalid_arguments", messages=[f"[ERROR] {problem} [json-pointer:/{name}]"])


class Args:
    """The arguments of one call (form strings or JSON values), read with the types Slack coerces them to."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = raw

    def text(self, name: str) -> str | None:
        """Return a string argument (a number counts as its text), None when absent."""
        value = self._raw.get(name)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise invalid_argument(name, "must be a string")

    def integer(self, name: str, default: int) -> int:
        """Return an integer argument, `default` when absent or empty."""
        value = self._raw.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise invalid_argument(name, "must be an integer")
        try:
            return int(value)
        except ValueError:
            raise invalid_argument(name, "must be an integer") from None

    def flag(self, name: str) -> bool:
        """Return a boolean argument ("1"/"true" or JSON true), False when absent."""
        value = self._raw.get(name)
        if value is None or isinstance(value, bool):
            return bool(value)
        if isinstance(value, (int, str)):
            return str(value).strip().lower() in ("1", "true")
        raise invalid_argument(name, "must be a boolean")

    def structured(self, name: str, error: str) -> Any:
        """Return a JSON argument (a JSON string in forms, a value in JSON bodies), None when absent."""
        value = self._raw.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise ApiError(error) from None
        return value
