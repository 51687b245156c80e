"""Secrets encrypted at rest: LeadLex keys and other credentials stored as Fernet tokens.

The keys come from one setting, LEXI_ENCRYPTION_KEYS: Fernet keys separated by commas. The first encrypts; every
key decrypts, so a key is rotated by putting a new one first, re-encrypting what is stored (`Vault.rotate`), then
dropping the old one. Neither a key nor a secret ever appears in a message this module makes: keys are named by
their position and a fingerprint (the start of their SHA-256), and a secret that cannot be read is named by nothing.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bot.errors import EncryptionKeysError, UnreadableSecret

__all__ = ["SETTING", "Vault", "generate_key"]

#: The environment variable the keys are read from (settings pass its value to `Vault.parse`).
SETTING = "LEXI_ENCRYPTION_KEYS"

#: A Fernet key as Fernet.generate_key() writes it: 32 bytes in URL-safe base64, 43 characters and one "=".
_KEY_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}=")
# Lone surrogates survive the round trip: a secret is stored exactly as given, whatever text it is.
_ERRORS = "surrogatepass"


def generate_key() -> str:
    """A new random Fernet key, as text fit for LEXI_ENCRYPTION_KEYS (what a `keys generate` command would print)."""
    return Fernet.generate_key().decode("ascii")


class Vault:
    """Encrypts secrets with the first of its keys and decrypts them with any; never shows a key or a secret."""

    def __init__(self, keys: Sequence[str]) -> None:
        """Use these Fernet keys, the first for encrypting; raise EncryptionKeysError naming each bad one."""
        problems = [problem for number, key in enumerate(keys, 1) if (problem := _key_problem(key, number, len(keys)))]
        if not keys:
            problems.append(f"{SETTING} has no key: set it to one or more Fernet keys separated by commas")
        if problems:
            raise EncryptionKeysError("; ".join(problems))
        raw = [base64.urlsafe_b64decode(key.strip()) for key in keys]
        self._primary = Fernet(base64.urlsafe_b64encode(raw[0]))
        self._all = MultiFernet([Fernet(base64.urlsafe_b64encode(key)) for key in raw])
        #: Each key's fingerprint, in order: the first 8 hex digits of its SHA-256, safe to print and log.
        self.fingerprints: tuple[str, ...] = tuple(hashlib.sha256(key).hexdigest()[:8] for key in raw)

    @classmethod
    def parse(cls, setting: str) -> Vault:
        """A vault from the setting's text: keys separated by commas, spaces around them ignored."""
        return cls([] if not setting.strip() else setting.split(","))

    def __repr__(self) -> str:
        """The vault by its fingerprints only, so that printing it never shows a key."""
        return f"Vault(fingerprints={list(self.fingerprints)})"

    def encrypt(self, secret: str) -> str:
        """The secret as a Fernet token (text), encrypted and signed with the first key."""
        return self._primary.encrypt(secret.encode("utf-8", _ERRORS)).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The secret inside a token made by any of the keys; raise UnreadableSecret when none can read it."""
        try:
            return self._all.decrypt(_token_bytes(token)).decode("utf-8", _ERRORS)
        except (InvalidToken, ValueError):
            raise self._unreadable() from None

    def rotate(self, token: str) -> str:
        """The same secret in a new token made with the first key; raise UnreadableSecret when no key reads it."""
        try:
            return self._all.rotate(_token_bytes(token)).decode("ascii")
        except (InvalidToken, ValueError):
            raise self._unreadable() from None

    def is_current(self, token: str) -> bool:
        """Whether the token was made with the first key (False also for a token no key can read)."""
        try:
            self._primary.decrypt(_token_bytes(token))
        except (InvalidToken, ValueError):
            return False
        return True

    def _unreadable(self) -> UnreadableSecret:
        """The error for a token no key reads, naming the keys tried by fingerprint."""
        count = len(self.fingerprints)
        return UnreadableSecret(
            f"a stored secret cannot be decrypted with the {count} key{'s' if count != 1 else ''} in {SETTING} "
            f"(fingerprints {', '.join(self.fingerprints)}): it was encrypted with a key no longer listed, "
            "or it has been altered"
        )


def _token_bytes(token: str) -> bytes:
    """A token as bytes; ValueError when it is not ASCII text, as every Fernet token is."""
    return token.encode("ascii")  # UnicodeEncodeError is a ValueError


def _key_problem(key: str, number: int, count: int) -> str | None:
    """What is wrong with the `number`th of `count` keys, in words that never quote it, or None."""
    where = f"{SETTING}: key {number} of {count}" if count > 1 else f"{SETTING}: the key"
    key = key.strip()
    if not key:
        return f"{where} is empty (a stray comma?)"
    if key[0] in "'\"" or key[-1] in "'\"":
        return f"{where} is in quotes: remove them"
    if not _KEY_SHAPE.fullmatch(key):  # then it always decodes to 32 bytes
        return (
            f"{where} is not a Fernet key, which is 44 characters of URL-safe base64 ending in '=' "
            f"(this one has {len(key)}), as cryptography's Fernet.generate_key() makes"
        )
    return None
