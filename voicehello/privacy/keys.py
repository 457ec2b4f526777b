"""This device's Ed25519 signing key, kept in ``keys_dir/device.key`` (mode 0600, directory 0700).

The file holds the 32-byte seed only. It is made on first use and never leaves the device;
neighbors learn the matching verify key from the key announcement on the pod's bus.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import stat
import threading
from pathlib import Path

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from voicehello.errors import EnvelopeError, PrivacyError

log = logging.getLogger(__name__)

KEY_FILE = "device.key"
SEED_BYTES = 32
SIGNATURE_BYTES = 64
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) as an owner-only directory; tighten it if it is wider."""
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("tightening %s from mode %o to 0700", path, mode)
            path.chmod(PRIVATE_DIR_MODE)
    except OSError as exc:
        raise PrivacyError(f"cannot make private directory {path}: {exc.strerror or exc}") from exc
    return path


def write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` with mode 0600 from the start (atomically unless ``exclusive``:
    then the file must not exist yet, and :class:`FileExistsError` is raised if it does)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    target = path if exclusive else path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(target, flags, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if not exclusive:
            os.replace(target, path)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def read_private(path: Path) -> bytes:
    """Read an owner-only file; :class:`PrivacyError` if group or others could read or write it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise PrivacyError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as source:
        mode = stat.S_IMODE(os.fstat(source.fileno()).st_mode)
        if mode & 0o077:
            raise PrivacyError(f"{path} is open to other users (mode {mode:04o}); run: chmod 600 {path}")
        return source.read()


class DeviceKeys:
    """This device's signing key."""

    def __init__(self, signing_key: SigningKey, path: Path | None = None) -> None:
        self._key = signing_key
        self.path = path
        """Where the key is stored (``None`` for a key held only in memory)."""

    @classmethod
    def generate(cls) -> DeviceKeys:
        """A fresh key held in memory only (tests, throw-away devices)."""
        return cls(SigningKey.generate())

    @classmethod
    def load_or_create(cls, keys_dir: Path) -> DeviceKeys:
        """The key in ``keys_dir/device.key``, made (mode 0600 in a 0700 directory) on first use."""
        path = private_dir(keys_dir) / KEY_FILE
        if not path.exists():
            try:
                write_private(path, bytes(SigningKey.generate()), exclusive=True)
                log.info("made a new device key in %s", path)
            except FileExistsError:
                pass  # another process made it first: use theirs
            except OSError as exc:
                raise PrivacyError(f"cannot write {path}: {exc.strerror or exc}") from exc
        seed = read_private(path)
        if len(seed) != SEED_BYTES:
            raise PrivacyError(f"{path} is not a voicehello key ({len(seed)} bytes, expected {SEED_BYTES})")
        return cls(SigningKey(seed), path)

    def sign(self, data: bytes) -> bytes:
        """NaCl signed message: 64-byte Ed25519 signature followed by ``data``."""
        return bytes(self._key.sign(data))

    @property
    def verify_key_b64(self) -> str:
        """The public verify key, standard base64 (44 characters)."""
        return base64.b64encode(bytes(self._key.verify_key)).decode("ascii")


def fingerprint(verify_key_b64: str) -> str:
    """A short form of a verify key that neighbors can compare aloud: 16 letters and digits in
    groups of four (80 bits of BLAKE2b; a different key matches by chance 1 in 2**80)."""
    digest = hashlib.blake2b(decode_verify_key(verify_key_b64).encode(), digest_size=10).digest()
    text = base64.b32encode(digest).decode("ascii").lower()
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def decode_verify_key(verify_key_b64: str) -> VerifyKey:
    """A verify key from its base64 form (:class:`EnvelopeError` when it is not one)."""
    try:
        raw = base64.b64decode(verify_key_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError("verify key is not base64") from exc
    if len(raw) != SEED_BYTES:
        raise EnvelopeError(f"verify key is {len(raw)} bytes, not {SEED_BYTES}")
    return VerifyKey(raw)


def is_verify_key(text: str) -> bool:
    """True when ``text`` is the base64 of a verify key."""
    try:
        decode_verify_key(text)
    except EnvelopeError:
        return False
    return True


def verify(signed: bytes, verify_key_b64: str) -> bytes:
    """The data inside a NaCl signed message, if ``verify_key_b64`` signed it (else :class:`EnvelopeError`)."""
    key = decode_verify_key(verify_key_b64)
    if len(signed) < SIGNATURE_BYTES:
        raise EnvelopeError("signed message is shorter than a signature")
    try:
        return bytes(key.verify(signed))
    except (BadSignatureError, CryptoError, ValueError) as exc:
        raise EnvelopeError("bad signature") from exc
