"""Envelope encryption: a fresh AES-256-GCM data key per object, wrapped by a KEK.

The easy call is the safe one: callers give a key manager, a KEK name, the plaintext and the
associated data that binds the ciphertext to its record; nonces and data keys never leave
this module.  The data key is wrapped with the KEK's current version and the envelope
records which, so ``rewrap`` can move an envelope to a newer KEK version by re-wrapping
only the 32-byte data key: the data ciphertext is kept byte for byte.

Wire format (all integers big-endian)::

    magic   "TSE"          3 bytes
    format  0x01           1 byte
    name    len u8 + ASCII the KEK name
    version u32            the KEK version that wrapped the data key
    wrapped len u16 + bytes the wrapped data key, as the key manager returned it
    nonce   12 bytes       AES-GCM nonce of the data
    data    ciphertext || 16-byte tag

The data is authenticated with ``"TSE" 0x01 || aad``; the data key is wrapped with a
domain-separated prefix and the same ``aad``.  The KEK name, version and wrapped key are
not in the data's associated data (so rewrap leaves the data alone): a forged header
still fails, because it cannot yield the one data key that authenticates the data.
"""

from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tsuba.core.errors import DecryptionError, InputError
from tsuba.core.keys.base import KeyManager, Wrapped
from tsuba.core.keys.names import check_key_name

DEFAULT_KEK = "data"  # the key-encryption key that 'tsuba init' creates for envelopes
MAGIC = b"TSE"
FORMAT = 1
DATA_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_PREFIX = MAGIC + bytes([FORMAT])
_WRAP_AAD = b"tsuba-envelope/v1 data-key\x00"
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_MAX_WRAPPED = 0xFFFF
_SCRATCH_MAX = 8 << 20
_local = threading.local()


@dataclass(frozen=True)
class EnvelopeHeader:
    """What an envelope says about itself; nothing here is secret."""

    kek_name: str
    kek_version: int
    wrapped_key: bytes
    nonce: bytes
    data_offset: int  # where ciphertext || tag starts in the blob


def encrypt(km: KeyManager, kek_name: str, plaintext: bytes, aad: bytes = b"") -> bytes:
    """Encrypt ``plaintext`` under a fresh data key wrapped by ``kek_name``'s current version."""
    check_key_name(kek_name)
    data_key = AESGCM.generate_key(bit_length=256)
    wrapped = km.wrap(kek_name, data_key, _WRAP_AAD + aad)
    nonce = os.urandom(NONCE_BYTES)
    header = _header(wrapped, nonce)
    size = len(header) + len(plaintext) + TAG_BYTES
    out = memoryview(_scratch(size))[:size]
    out[: len(header)] = header
    try:
        AESGCM(data_key).encrypt_into(nonce, plaintext, _PREFIX + aad, out[len(header) :])
    except OverflowError:
        raise InputError(
            f"plaintext of {len(plaintext)} bytes is too large for one envelope"
        ) from None
    return out.tobytes()


def decrypt(km: KeyManager, blob: bytes, aad: bytes = b"") -> bytes:
    """The plaintext of ``blob``; DecryptionError unless key, ``aad`` and bytes all match."""
    header = read_header(blob)
    data_key = _unwrap(km, header, aad)
    try:
        return AESGCM(data_key).decrypt(
            header.nonce, memoryview(blob)[header.data_offset :], _PREFIX + aad
        )
    except InvalidTag:
        raise DecryptionError(
            "envelope does not decrypt: wrong associated data or tampered ciphertext"
        ) from None


def rewrap(km: KeyManager, blob: bytes, aad: bytes = b"") -> bytes:
    """``blob`` with its data key re-wrapped under the KEK's current version.

    The data ciphertext is not touched; an envelope already on the current version is
    returned as it is.
    """
    header = read_header(blob)
    if km.info(header.kek_name).current_version == header.kek_version:
        return blob
    data_key = _unwrap(km, header, aad)
    wrapped = km.wrap(header.kek_name, data_key, _WRAP_AAD + aad)
    return _header(wrapped, header.nonce) + memoryview(blob)[header.data_offset :]


def read_header(blob: bytes) -> EnvelopeHeader:
    """Parse the header of ``blob``; InputError naming what is malformed."""
    size = len(blob)
    if size < len(_PREFIX) or blob[: len(MAGIC)] != MAGIC:
        raise InputError("not a tsuba envelope (missing 'TSE' magic)")
    if blob[len(MAGIC)] != FORMAT:
        raise InputError(f"unsupported envelope format {blob[len(MAGIC)]} (this tsuba reads 1)")
    pos = len(_PREFIX)
    if pos + 1 > size:
        raise _truncated(size)
    name_len = blob[pos]
    pos += 1
    if pos + name_len + _U32.size + _U16.size > size:
        raise _truncated(size)
    try:
        name = bytes(blob[pos : pos + name_len]).decode("ascii")
    except UnicodeDecodeError:
        raise InputError("envelope header is corrupted: KEK name is not ASCII") from None
    check_key_name(name)
    pos += name_len
    (version,) = _U32.unpack_from(blob, pos)
    (wrapped_len,) = _U16.unpack_from(blob, pos + _U32.size)
    pos += _U32.size + _U16.size
    if version < 1 or wrapped_len == 0:
        raise InputError("envelope header is corrupted: KEK version or wrapped key is empty")
    if pos + wrapped_len + NONCE_BYTES + TAG_BYTES > size:
        raise _truncated(size)
    wrapped = bytes(blob[pos : pos + wrapped_len])
    pos += wrapped_len
    nonce = bytes(blob[pos : pos + NONCE_BYTES])
    return EnvelopeHeader(name, version, wrapped, nonce, pos + NONCE_BYTES)


def _scratch(size: int) -> bytearray:
    """A per-thread buffer to assemble header and ciphertext in before the one copy out.

    Building the result in a fresh buffer and copying it (or concatenating header and
    ciphertext) makes two large short-lived allocations per object; glibc then hands the
    memory back to the kernel and faults it in again on every call, which costs several
    times the encryption itself.  The buffer holds ciphertext only, never plaintext, and
    is kept only up to ``_SCRATCH_MAX`` bytes.
    """
    if size > _SCRATCH_MAX:
        return bytearray(size)
    buf: bytearray | None = getattr(_local, "buf", None)
    if buf is None or len(buf) < size:
        buf = bytearray(max(size, 4096))
        _local.buf = buf
    return buf


def _header(wrapped: Wrapped, nonce: bytes) -> bytes:
    name = wrapped.key_name.encode("ascii")
    if len(wrapped.ciphertext) > _MAX_WRAPPED:
        raise InputError("wrapped data key is too large for the envelope header")
    return b"".join(
        [
            _PREFIX,
            bytes([len(name)]),
            name,
            _U32.pack(wrapped.version),
            _U16.pack(len(wrapped.ciphertext)),
            wrapped.ciphertext,
            nonce,
        ]
    )


def _unwrap(km: KeyManager, header: EnvelopeHeader, aad: bytes) -> bytes:
    wrapped = Wrapped(header.kek_name, header.kek_version, header.wrapped_key)
    try:
        data_key = km.unwrap(wrapped, _WRAP_AAD + aad)
    except DecryptionError as exc:
        raise DecryptionError(
            f"envelope does not decrypt: its data key did not unwrap with key "
            f"'{header.kek_name}' version {header.kek_version} (wrong associated data or "
            "tampered envelope)"
        ) from exc
    if len(data_key) != DATA_KEY_BYTES:
        raise DecryptionError("envelope does not decrypt: the unwrapped data key has a bad size")
    return data_key


def _truncated(size: int) -> InputError:
    return InputError(f"envelope is truncated ({size} bytes): header or data is incomplete")
