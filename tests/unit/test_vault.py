"""Secrets at rest: Fernet tokens under rotatable keys, with errors and logs that never show a key or a secret."""

from __future__ import annotations

import base64
import logging
import traceback

import pytest
from cryptography.fernet import Fernet
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.db.vault import SETTING, Vault, generate_key
from bot.errors import ConfigError, EncryptionKeysError, LexiBotError, UnreadableSecret
from tests.support.harness import SECRETS_GIVEN

SECRET = "wbk_live_0123456789abcdef"


def test_round_trip_gives_back_the_secret_in_a_token_that_does_not_show_it() -> None:
    """encrypt() makes a text token without the secret in it; decrypt() gives the secret back exactly."""
    vault = Vault([generate_key()])
    token = vault.encrypt(SECRET)
    assert isinstance(token, str) and token.isascii()
    assert SECRET not in token and SECRET not in base64.urlsafe_b64decode(token).decode("latin-1")
    assert vault.decrypt(token) == SECRET
    assert vault.encrypt(SECRET) != token  # a fresh IV each time: equal secrets do not look equal at rest


def test_tokens_are_real_fernet_tokens_of_the_first_key() -> None:
    """A token is readable by cryptography's Fernet with the first key, so nothing here is home-made crypto."""
    first, second = generate_key(), generate_key()
    token = Vault.parse(f"{first},{second}").encrypt(SECRET)
    assert Fernet(first.encode()).decrypt(token.encode()).decode() == SECRET


def test_rotation_across_two_keys() -> None:
    """With a new key first, old tokens still decrypt, rotate() re-encrypts them under it, and the old key can go."""
    old, new = generate_key(), generate_key()
    before = Vault.parse(old)
    token = before.encrypt(SECRET)
    during = Vault.parse(f"{new}, {old}")
    assert during.decrypt(token) == SECRET
    assert not during.is_current(token)
    rotated = during.rotate(token)
    assert rotated != token and during.is_current(rotated)
    after = Vault.parse(new)
    assert after.decrypt(rotated) == SECRET
    with pytest.raises(UnreadableSecret):
        after.decrypt(token)  # not rotated: lost once the old key is dropped, and said so


def test_wrong_key_is_an_unreadable_secret_naming_fingerprints_only() -> None:
    """A token made under another key raises UnreadableSecret, with a message naming the keys tried by fingerprint."""
    mine, theirs = generate_key(), generate_key()
    token = Vault([theirs]).encrypt(SECRET)
    vault = Vault([mine])
    with pytest.raises(UnreadableSecret) as caught:
        vault.decrypt(token)
    message = str(caught.value)
    assert SETTING in message and vault.fingerprints[0] in message and "1 key " in message
    assert isinstance(caught.value, LexiBotError)
    with pytest.raises(UnreadableSecret):
        vault.rotate(token)
    assert not vault.is_current(token)


def _flip(token: str, at: int) -> str:
    """The token with one bit of its decoded bytes flipped (a changed base64 letter may only change padding bits)."""
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[at] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: _flip(t, -1),  # a bit of the signature
        lambda t: _flip(t, 30),  # a bit of the ciphertext
        lambda t: t[:-10],  # cut short
        lambda _: "",
        lambda _: "not a token at all",
        lambda t: "é" + t,  # not ASCII
    ],
)
def test_tampered_token_is_unreadable(tamper: object) -> None:
    """Any change to a token, or something that is no token, raises UnreadableSecret and nothing else."""
    vault = Vault([generate_key()])
    token = vault.encrypt(SECRET)
    altered = tamper(token)  # type: ignore[operator]
    assert altered != token
    with pytest.raises(UnreadableSecret):
        vault.decrypt(altered)
    with pytest.raises(UnreadableSecret):
        vault.rotate(altered)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("", "has no key"),
        ("   ", "has no key"),
        ("short", "the key is not a Fernet key"),
        ("{good},", "key 2 of 2 is empty"),
        ("{good},,{good}", "key 2 of 3 is empty"),
        ("'{good}'", "the key is in quotes"),
        ("{good},{standard}", "key 2 of 2 is not a Fernet key"),  # standard base64 (+ and /), not URL-safe
        ("{good},{good}x", "key 2 of 2 is not a Fernet key"),
    ],
)
def test_malformed_key_lists_are_refused_without_quoting_a_key(setting: str, expected: str) -> None:
    """A malformed LEXI_ENCRYPTION_KEYS raises EncryptionKeysError (a ConfigError) naming the key by position only."""
    good = generate_key()
    standard = base64.b64encode(b"\xfb" * 32).decode()
    assert "+" in standard or "/" in standard
    text = setting.format(good=good, standard=standard)
    with pytest.raises(EncryptionKeysError) as caught:
        Vault.parse(text)
    message = str(caught.value)
    assert expected in message and isinstance(caught.value, ConfigError)
    for key in {good, standard, "short", good + "x"}:
        assert key not in message


def test_every_bad_key_is_named_at_once() -> None:
    """Two bad keys in one setting give one error naming both."""
    with pytest.raises(EncryptionKeysError) as caught:
        Vault.parse(f"nope,{generate_key()},also-nope")
    assert "key 1 of 3" in str(caught.value) and "key 3 of 3" in str(caught.value)


def test_generated_keys_are_distinct_valid_keys() -> None:
    """generate_key() makes a new key each time, each accepted as a setting on its own."""
    keys = {generate_key() for _ in range(5)}
    assert len(keys) == 5
    vault = Vault.parse(",".join(sorted(keys)))
    assert len(vault.fingerprints) == 5 and len(set(vault.fingerprints)) == 5


def test_repr_shows_fingerprints_not_keys() -> None:
    """Printing a vault (in a log line or a traceback) shows fingerprints, never a key."""
    key = generate_key()
    vault = Vault([key])
    assert key not in repr(vault) and vault.fingerprints[0] in repr(vault)


def test_failing_decrypt_never_shows_the_secret_or_a_key(caplog: pytest.LogCaptureFixture) -> None:
    """A decrypt that fails logs nothing secret and raises an error whose text and traceback hold no key or secret."""
    right, wrong, also_wrong = generate_key(), generate_key(), generate_key()
    SECRETS_GIVEN.update((SECRET, right, wrong, also_wrong))  # the session's log scan looks for them too
    token = Vault([right]).encrypt(SECRET)
    vault = Vault([wrong, also_wrong])
    caplog.set_level(logging.DEBUG)
    with pytest.raises(UnreadableSecret) as caught:
        vault.decrypt(token)
    try:
        vault.rotate(token)
    except UnreadableSecret as error:
        logging.getLogger("bot.test").exception("reading a LeadLex key failed: %s", error)  # noqa: TRY401 - as a caller would
    shown = "\n".join(
        [
            caplog.text,
            *(record.getMessage() for record in caplog.records),
            str(caught.value),
            repr(caught.value),
            "".join(traceback.format_exception(caught.value)),
        ]
    )
    for secret in (SECRET, right, wrong, also_wrong, token):
        assert secret not in shown
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@settings(max_examples=60, deadline=None)
@given(secret=st.text(max_size=300))
def test_any_text_survives_the_round_trip_and_a_rotation(secret: str) -> None:
    """Whatever the text (surrogates, NULs, emoji, empty), it comes back unchanged, also after a key rotation."""
    old, new = _KEYS
    token = Vault([old]).encrypt(secret)
    assert Vault([old]).decrypt(token) == secret
    both = Vault([new, old])
    assert Vault([new]).decrypt(both.rotate(token)) == secret


@settings(max_examples=60, deadline=None)
@given(garbage=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: base64.urlsafe_b64encode(b).decode()))
def test_any_garbage_token_is_unreadable_never_another_error(garbage: str) -> None:
    """Whatever a stored value was changed into, decrypt() raises UnreadableSecret and no other exception."""
    with pytest.raises(UnreadableSecret):
        Vault([_KEYS[0]]).decrypt(garbage)


# Generated once: hypothesis runs each property many times, and key generation is not what they test.
_KEYS = (generate_key(), generate_key())
