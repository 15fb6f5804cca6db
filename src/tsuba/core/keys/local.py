"""Local keyring: a JSON file whose key material is encrypted under the master key.

Layout (``format`` = ``tsuba-keyring``, ``version`` = 1)::

    {"format", "version", "id", "kdf": {scrypt salt and cost}, "check", "keys": {...}, "mac"}

* The master secret (see :mod:`tsuba.core.keys.master`) gives a 32-byte root; HKDF-SHA256
  with the keyring ``id`` derives three subkeys: one encrypts key material, one computes
  ``check`` and one computes ``mac``.
* ``check`` is an HMAC of a constant, so a wrong master key is told apart from tampering.
* ``mac`` is an HMAC over the canonical JSON of everything else, so metadata (current
  version, retired versions, public keys) cannot be edited behind tsuba's back.
* Each version's secret is AES-256-GCM encrypted with associated data naming the key, the
  version and the kind, so entries cannot be swapped between keys or versions.
* Retiring a version erases its secret (crypto-shredding): what it wrapped is gone for good.
  Public keys of retired signing versions stay, so old signatures still verify.

Writers lock ``<file>.lock``, re-read the file under the lock, and replace it atomically,
so two processes rotating at once both land.  Readers notice a replaced file by its inode,
size and mtime and reload it, so a rotation or retirement elsewhere is seen at once.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import constant_time, hashes, serialization
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict, ValidationError

from tsuba.core.errors import DecryptionError, KeyStoreError
from tsuba.core.keys.base import KeyInfo, KeyKind, Signature, Wrapped
from tsuba.core.keys.files import atomic_write, create_exclusive, exclusive_lock
from tsuba.core.keys.master import MasterSecret
from tsuba.core.keys.names import check_key_name, check_version

FORMAT = "tsuba-keyring"
FORMAT_VERSION = 1
NONCE = 12
TAG = 16
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_CHECK_CONSTANT = b"tsuba keyring master key check"


# -- the document ------------------------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class _Kdf(_Model):
    name: str
    salt: str
    n: int
    r: int
    p: int


class _Version(_Model):
    created_at: datetime
    retired: bool = False
    secret: str | None = None  # base64(nonce || AES-GCM ciphertext); None once retired
    public: str | None = None  # PEM, asymmetric kinds only


class _Key(_Model):
    kind: KeyKind
    created_at: datetime
    current: int
    labels: dict[str, str] = {}
    versions: dict[int, _Version]


class _Document(_Model):
    format: str
    version: int
    id: str
    kdf: _Kdf
    check: str
    keys: dict[str, _Key]
    mac: str


def _canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _entry_aad(name: str, version: int, kind: KeyKind) -> bytes:
    return b"\x00".join([b"tsuba-keyring-entry/v1", name.encode(), str(version).encode(),
                         kind.value.encode()])


@dataclass(frozen=True)
class _Subkeys:
    seal: AESGCM
    check: bytes
    mac: bytes

    @classmethod
    def derive(cls, root: bytes, keyring_id: str) -> _Subkeys:
        def sub(purpose: str) -> bytes:
            info = f"tsuba keyring v1 {purpose} {keyring_id}".encode()
            return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(root)

        return cls(seal=AESGCM(sub("seal")), check=sub("check"), mac=sub("mac"))

    def hmac(self, key: bytes, data: bytes) -> bytes:
        h = crypto_hmac.HMAC(key, hashes.SHA256())
        h.update(data)
        return h.finalize()


# -- key material ------------------------------------------------------------------------
def _new_material(kind: KeyKind) -> tuple[bytes, str | None]:
    """Fresh secret bytes for ``kind`` and, for signing kinds, the public key PEM."""
    if kind in (KeyKind.AES256_GCM, KeyKind.HMAC_SHA256):
        return os.urandom(32), None
    if kind is KeyKind.ED25519:
        ed = ed25519.Ed25519PrivateKey.generate()
        raw = ed.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return raw, _pem(ed.public_key())
    p256 = ec.generate_private_key(ec.SECP256R1())
    return p256.private_numbers().private_value.to_bytes(32, "big"), _pem(p256.public_key())


def _pem(public: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def _sign_with(kind: KeyKind, secret: bytes, data: bytes) -> tuple[str, bytes]:
    if kind is KeyKind.ED25519:
        return "ed25519", ed25519.Ed25519PrivateKey.from_private_bytes(secret).sign(data)
    key = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())
    return "ecdsa-p256-sha256", key.sign(data, ec.ECDSA(hashes.SHA256()))


# -- the manager -------------------------------------------------------------------------
@dataclass
class _Loaded:
    stamp: tuple[int, int, int]
    doc: _Document
    subkeys: _Subkeys


class LocalKeyManager:
    """A :class:`~tsuba.core.keys.base.KeyManager` over a keyring file."""

    backend = "local"

    def __init__(self, path: Path, master: MasterSecret) -> None:
        """Open the existing keyring at ``path``; it is read and authenticated right away."""
        self.path = path
        self._master = master
        self._lock = threading.RLock()
        self._loaded: _Loaded | None = None
        self._roots: dict[tuple[str, int, int, int], bytes] = {}
        self._secrets: dict[str, bytes] = {}
        self._aeads: dict[str, AESGCM] = {}
        self._current()

    @classmethod
    def initialise(cls, path: Path, master: MasterSecret) -> LocalKeyManager:
        """Create an empty keyring at ``path`` (0600); refuses to replace an existing one."""
        keyring_id = uuid.uuid4().hex
        salt = os.urandom(16)
        kdf = _Kdf(name="scrypt", salt=_b64(salt), n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
        root = master.root_key(salt, kdf.n, kdf.r, kdf.p)
        sub = _Subkeys.derive(root, keyring_id)
        body: dict[str, Any] = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "id": keyring_id,
            "kdf": kdf.model_dump(),
            "check": _b64(sub.hmac(sub.check, _CHECK_CONSTANT)),
            "keys": {},
        }
        if not create_exclusive(path, _serialise(body, sub)):
            raise KeyStoreError(f"keyring {path} already exists: refusing to replace it")
        return cls(path, master)

    # -- reading -------------------------------------------------------------------------
    def _current(self) -> _Loaded:
        """The authenticated document, reloaded when the file was replaced."""
        with self._lock:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                raise KeyStoreError(
                    f"no keyring at {self.path}: run 'tsuba init' to create one"
                ) from None
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            if self._loaded is None or self._loaded.stamp != stamp:
                self._loaded = self._read(stamp)
                self._forget_stale(self._loaded.doc)
            return self._loaded

    def _forget_stale(self, doc: _Document) -> None:
        """Drop cached material that the file no longer holds (retired elsewhere)."""
        live = {v.secret for k in doc.keys.values() for v in k.versions.values() if v.secret}
        for cache in (self._secrets, self._aeads):
            for sealed in [s for s in cache if s not in live]:
                del cache[sealed]

    def _read(self, stamp: tuple[int, int, int]) -> _Loaded:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise KeyStoreError(f"cannot read keyring {self.path}: {exc.strerror}") from exc
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise self._corrupt("is truncated or corrupted (not valid JSON)") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise self._corrupt("is not a tsuba keyring")
        if data.get("version") != FORMAT_VERSION:
            raise self._corrupt(f"has format version {data.get('version')!r}, expected 1")
        try:
            doc = _Document.model_validate(data)
            salt, check, mac = _unb64(doc.kdf.salt), _unb64(doc.check), _unb64(doc.mac)
        except (ValidationError, binascii.Error, ValueError) as exc:
            raise self._corrupt(f"is malformed ({_first_error(exc)})") from None
        if doc.kdf.name != "scrypt":
            raise self._corrupt(f"names an unknown key derivation {doc.kdf.name!r}")
        sub = _Subkeys.derive(self._root(doc.kdf, salt), doc.id)
        if not constant_time.bytes_eq(check, sub.hmac(sub.check, _CHECK_CONSTANT)):
            raise KeyStoreError(
                f"wrong master key for keyring {self.path} (master key from "
                f"{self._master.source})"
            )
        body = {k: v for k, v in data.items() if k != "mac"}
        if not constant_time.bytes_eq(mac, sub.hmac(sub.mac, _canonical(body))):
            raise self._corrupt("failed its integrity check (it was modified outside tsuba)")
        return _Loaded(stamp=stamp, doc=doc, subkeys=sub)

    def _root(self, kdf: _Kdf, salt: bytes) -> bytes:
        cache_key = (kdf.salt, kdf.n, kdf.r, kdf.p)
        root = self._roots.get(cache_key)
        if root is None:
            try:
                root = self._master.root_key(salt, kdf.n, kdf.r, kdf.p)
            except ValueError as exc:
                raise self._corrupt(f"has unusable scrypt parameters ({exc})") from None
            self._roots[cache_key] = root
        return root

    def _corrupt(self, what: str) -> KeyStoreError:
        return KeyStoreError(
            f"keyring {self.path} {what}: restore it from a backup; the file was left unchanged"
        )

    def _key(self, loaded: _Loaded, name: str) -> _Key:
        check_key_name(name)
        key = loaded.doc.keys.get(name)
        if key is None:
            raise KeyStoreError(
                f"no key named '{name}' in keyring {self.path}: create it with "
                f"'tsuba keys create {name} --kind ...'"
            )
        return key

    def _live_version(self, name: str, key: _Key, version: int) -> _Version:
        entry = key.versions.get(version)
        if entry is None:
            raise KeyStoreError(f"key '{name}' has no version {version}")
        if entry.retired or entry.secret is None:
            raise KeyStoreError(
                f"key '{name}' version {version} is retired: what it protected can no longer "
                "be decrypted or signed"
            )
        return entry

    def _secret(self, loaded: _Loaded, name: str, key: _Key, version: int) -> bytes:
        sealed = self._live_version(name, key, version).secret
        assert sealed is not None
        cached = self._secrets.get(sealed)
        if cached is not None:
            return cached
        try:
            blob = _unb64(sealed)
            secret = loaded.subkeys.seal.decrypt(
                blob[:NONCE], blob[NONCE:], _entry_aad(name, version, key.kind)
            )
        except (binascii.Error, ValueError, InvalidTag):
            raise self._corrupt(
                f"holds key '{name}' version {version} that does not decrypt"
            ) from None
        self._secrets[sealed] = secret
        return secret

    def _aead(self, loaded: _Loaded, name: str, key: _Key, version: int) -> AESGCM:
        sealed = self._live_version(name, key, version).secret
        assert sealed is not None
        aead = self._aeads.get(sealed)
        if aead is None:
            aead = AESGCM(self._secret(loaded, name, key, version))
            self._aeads[sealed] = aead
        return aead

    def _require(self, name: str, key: _Key, *kinds: KeyKind) -> None:
        if key.kind not in kinds:
            wanted = " or ".join(k.value for k in kinds)
            raise KeyStoreError(f"key '{name}' is {key.kind.value}; this needs a {wanted} key")

    # -- writing -------------------------------------------------------------------------
    def _mutate(self, name: str, change: Callable[[_Loaded], None]) -> KeyInfo:
        """Apply ``change`` to a fresh read of the file under the lock, then replace it."""
        check_key_name(name)
        with self._lock, exclusive_lock(self.path):
            st = os.stat(self.path)
            loaded = self._read((st.st_ino, st.st_size, st.st_mtime_ns))
            change(loaded)
            body = loaded.doc.model_dump(mode="json", exclude={"mac"})
            atomic_write(self.path, _serialise(body, loaded.subkeys))
            self._loaded = None
            return self.info(name)

    def _seal(self, loaded: _Loaded, name: str, kind: KeyKind, number: int) -> _Version:
        secret, public = _new_material(kind)
        nonce = os.urandom(NONCE)
        sealed = nonce + loaded.subkeys.seal.encrypt(nonce, secret, _entry_aad(name, number, kind))
        return _Version(created_at=_now(), secret=_b64(sealed), public=public)

    # -- KeyManager ----------------------------------------------------------------------
    def create(self, name: str, kind: KeyKind, *, exist_ok: bool = False) -> KeyInfo:
        kind = KeyKind(kind)

        def change(loaded: _Loaded) -> None:
            existing = loaded.doc.keys.get(name)
            if existing is not None:
                if exist_ok and existing.kind is kind:
                    return
                raise KeyStoreError(
                    f"key '{name}' already exists in keyring {self.path} "
                    f"(kind {existing.kind.value})"
                )
            first = self._seal(loaded, name, kind, 1)
            loaded.doc.keys[name] = _Key(
                kind=kind, created_at=first.created_at, current=1, versions={1: first}
            )

        return self._mutate(name, change)

    def info(self, name: str) -> KeyInfo:
        key = self._key(self._current(), name)
        return _info(name, key)

    def list_keys(self) -> list[KeyInfo]:
        loaded = self._current()
        return [_info(name, key) for name, key in sorted(loaded.doc.keys.items())]

    def rotate(self, name: str) -> KeyInfo:
        def change(loaded: _Loaded) -> None:
            key = self._key(loaded, name)
            number = max(key.versions) + 1
            key.versions[number] = self._seal(loaded, name, key.kind, number)
            key.current = number

        return self._mutate(name, change)

    def retire(self, name: str, version: int) -> KeyInfo:
        check_version(version)

        def change(loaded: _Loaded) -> None:
            key = self._key(loaded, name)
            entry = key.versions.get(version)
            if entry is None:
                raise KeyStoreError(f"key '{name}' has no version {version}")
            if version == key.current:
                raise KeyStoreError(
                    f"cannot retire version {version} of key '{name}': it is the current "
                    f"version; run 'tsuba keys rotate {name}' first"
                )
            entry.retired = True
            entry.secret = None

        return self._mutate(name, change)

    def wrap(self, name: str, plaintext: bytes, aad: bytes = b"") -> Wrapped:
        loaded = self._current()
        key = self._key(loaded, name)
        self._require(name, key, KeyKind.AES256_GCM)
        nonce = os.urandom(NONCE)
        sealed = self._aead(loaded, name, key, key.current).encrypt(nonce, plaintext, aad)
        return Wrapped(key_name=name, version=key.current, ciphertext=nonce + sealed)

    def unwrap(self, wrapped: Wrapped, aad: bytes = b"") -> bytes:
        loaded = self._current()
        key = self._key(loaded, wrapped.key_name)
        self._require(wrapped.key_name, key, KeyKind.AES256_GCM)
        aead = self._aead(loaded, wrapped.key_name, key, wrapped.version)
        blob = memoryview(wrapped.ciphertext)
        if len(blob) < NONCE + TAG:
            raise DecryptionError(
                f"wrapped key for '{wrapped.key_name}' is truncated ({len(blob)} bytes)"
            )
        try:
            return aead.decrypt(blob[:NONCE], blob[NONCE:], aad)
        except InvalidTag:
            raise DecryptionError(
                f"unwrap with key '{wrapped.key_name}' version {wrapped.version} failed: "
                "wrong associated data or tampered ciphertext"
            ) from None

    def sign(self, name: str, data: bytes) -> Signature:
        loaded = self._current()
        key = self._key(loaded, name)
        self._require(name, key, KeyKind.ED25519, KeyKind.ECDSA_P256)
        secret = self._secret(loaded, name, key, key.current)
        algorithm, value = _sign_with(key.kind, secret, data)
        return Signature(key_name=name, version=key.current, algorithm=algorithm, value=value)

    def public_key_pem(self, name: str, version: int | None = None) -> bytes:
        key = self._key(self._current(), name)
        self._require(name, key, KeyKind.ED25519, KeyKind.ECDSA_P256)
        number = key.current if version is None else check_version(version)
        entry = key.versions.get(number)
        if entry is None or entry.public is None:
            raise KeyStoreError(f"key '{name}' has no version {number}")
        return entry.public.encode("ascii")

    def hmac(self, name: str, data: bytes) -> bytes:
        loaded = self._current()
        key = self._key(loaded, name)
        self._require(name, key, KeyKind.HMAC_SHA256)
        mac = crypto_hmac.HMAC(self._secret(loaded, name, key, key.current), hashes.SHA256())
        mac.update(data)
        return mac.finalize()


def _serialise(body: dict[str, Any], sub: _Subkeys) -> bytes:
    mac = _b64(sub.hmac(sub.mac, _canonical(body)))
    return (json.dumps({**body, "mac": mac}, indent=2, sort_keys=True) + "\n").encode()


def _info(name: str, key: _Key) -> KeyInfo:
    return KeyInfo(
        name=name,
        kind=key.kind,
        current_version=key.current,
        versions=tuple(sorted(key.versions)),
        retired=tuple(sorted(v for v, e in key.versions.items() if e.retired)),
        created_at=key.created_at.astimezone(UTC),
        backend=LocalKeyManager.backend,
        labels=dict(key.labels),
    )


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        return f"{loc}: {err['msg']}"
    return str(exc) or type(exc).__name__
