"""Passwords (argon2id) and random tokens (stored as SHA-256).

Hashing and verifying run in a worker thread: argon2id is deliberately slow and memory-hard
(64 MiB, 3 passes by default) and must not stall the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "PASSWORD_MAX",
    "PASSWORD_MIN",
    "PasswordPolicyError",
    "check_password_policy",
    "generate_password",
    "hash_password",
    "new_token",
    "same_secret",
    "token_hash",
    "verify_password",
]

PASSWORD_MIN = 10
PASSWORD_MAX = 256
TOKEN_PREFIX = "lxa_"
_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/l/I

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile; stateless and thread-safe


@functools.cache
def _dummy_hash() -> str:
    """Verified when the username is unknown, so both paths take the same time."""
    return _hasher.hash(secrets.token_urlsafe(16))


class PasswordPolicyError(ValueError):
    pass


def check_password_policy(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise PasswordPolicyError(f"must be at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise PasswordPolicyError(f"must be at most {PASSWORD_MAX} characters")


def generate_password() -> str:
    """16 characters from a 56-symbol alphabet without look-alikes (~93 bits)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(16))


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``; ``stored=None`` burns the same time, False."""
    return await asyncio.to_thread(_verify, stored, password)


def new_token(prefix: str = TOKEN_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
