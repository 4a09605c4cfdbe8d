"""The soft backend's key store: a JSON file of keys wrapped under a local master key.

Layout under the store folder (``ONECARD_HOME/keys``):

- ``master.key``: 32 random bytes, mode 0600; the store refuses to open when the file is
  readable or writable by group or others, or is not a regular file.
- ``keystore.json``: one :class:`StoredKey` per label, each version of the key sealed
  with AES-256-GCM under the master key, the associated data binding it to its label,
  type and version (a wrapped key copied to another label does not open).

Writes go to a temporary file renamed over the old one, so a crash never leaves half a
store, and changes hold an exclusive lock (``.lock``) so two ceremonies cannot lose each
other's keys.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hsm.errors import KeyStoreError
from hsm.service import KeyInfo

MASTER_KEY_SIZE = 32
NONCE_SIZE = 12
MASTER_KEY_FILE = "master.key"
STORE_FILE = "keystore.json"


class StoredKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A key's metadata and its wrapped versions (hex of nonce || ciphertext || tag)."""

    info: KeyInfo
    wrapped: list[str]


class StoreFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: int
    keys: list[StoredKey]


def create_master_key(folder: Path) -> bool:
    """Create the folder (0700) and a new master key file (0600) unless one exists.

    Returns whether a new master key was written.
    """
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / MASTER_KEY_FILE
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(os.urandom(MASTER_KEY_SIZE))
    return True


def read_master_key(folder: Path) -> bytes:
    """The master key, after checking that only its owner can read it.

    Raises
    ------
    KeyStoreError
        Missing, not a regular file, readable or writable by group/others, or not 32 bytes.
    """
    path = folder / MASTER_KEY_FILE
    try:
        status = path.lstat()
    except FileNotFoundError:
        raise KeyStoreError(f"no master key file at {path}; run `onecard keys init`") from None
    if not stat.S_ISREG(status.st_mode):
        raise KeyStoreError(f"master key file {path} is not a regular file")
    if status.st_mode & 0o077:
        raise KeyStoreError(
            f"master key file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(status.st_mode):04o}); run chmod 600 on it"
        )
    key = path.read_bytes()
    if len(key) != MASTER_KEY_SIZE:
        raise KeyStoreError(f"master key file {path} must hold {MASTER_KEY_SIZE} bytes")
    return key


def _associated_data(info: KeyInfo, version: int) -> bytes:
    return f"onecard-key|{info.label}|{info.key_type}|{version}".encode()


def wrap(master_key: bytes, info: KeyInfo, version: int, key: bytes) -> str:
    """Seal one key version under the master key (hex)."""
    nonce = os.urandom(NONCE_SIZE)
    return (nonce + AESGCM(master_key).encrypt(nonce, key, _associated_data(info, version))).hex()


def unwrap(master_key: bytes, info: KeyInfo, version: int, wrapped: str) -> bytes:
    """Open one key version.

    Raises
    ------
    KeyStoreError
        The store was altered or belongs to another master key.
    """
    sealed = bytes.fromhex(wrapped)
    try:
        return AESGCM(master_key).decrypt(
            sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], _associated_data(info, version)
        )
    except (InvalidTag, ValueError):
        raise KeyStoreError(
            f"key {info.label!r} version {version} does not open under the master key"
        ) from None


def read_store(folder: Path) -> list[StoredKey]:
    """The stored keys (none when the store file does not exist yet)."""
    path = folder / STORE_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    try:
        return msgspec.json.decode(data, type=StoreFile).keys
    except msgspec.DecodeError as error:
        raise KeyStoreError(f"key store {path} is damaged: {error}") from None


def write_store(folder: Path, keys: list[StoredKey]) -> None:
    """Replace the store file atomically (mode 0600)."""
    path = folder / STORE_FILE
    temporary = folder / f".{STORE_FILE}.{os.getpid()}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(msgspec.json.encode(StoreFile(format=1, keys=keys)))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


@contextlib.contextmanager
def store_lock(folder: Path) -> Iterator[None]:
    """Hold the store's exclusive lock (blocking) while reading, changing and writing it."""
    descriptor = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def store_mtime_ns(folder: Path) -> int:
    """The store file's modification time (0 when absent), to notice other writers."""
    try:
        return (folder / STORE_FILE).stat().st_mtime_ns
    except FileNotFoundError:
        return 0
