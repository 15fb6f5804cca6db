"""PKCS#11 backend: keys live in an HSM (SoftHSM2 in tests) and never leave it.

Each key version is a token object labelled ``<name>.v<N>`` (CKA_ID the same bytes):

* ``aes256-gcm``: a sensitive, non-extractable AES-256 secret key.  ``wrap`` encrypts with
  CKM_AES_GCM inside the token (SoftHSM2 2.6 supports it, so AES key wrap is not needed):
  96-bit nonce from the OS, 128-bit tag, caller's associated data; the wrapped form is
  ``nonce || ciphertext || tag``.
* ``hmac-sha256``: a generic secret used with CKM_SHA256_HMAC.
* ``ecdsa-p256``: an EC key pair on P-256; SHA-256 is computed here, the token signs the
  digest with CKM_ECDSA and the raw ``r || s`` is DER-encoded, as X.509 tools expect.
* ``ed25519``: an EC_EDWARDS key pair signing with CKM_EDDSA, when the token offers it.

Retiring a version destroys its secret or private key and leaves a CKO_DATA tombstone with
the same label, so the version stays known (and refused) rather than silently missing; the
public key of a retired signing version stays, so old signatures still verify.

A process logs in to a token once (PKCS#11 login is per application, not per session), so
managers for the same module and token share one session; a different PIN is still refused.
Rotation picks the next free version number but a token cannot lock a label, so two
processes rotating one key at the same moment may collide: the duplicate is detected and
refused on use.
"""

from __future__ import annotations

import hashlib
import hmac as std_hmac
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pkcs11
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import PinIncorrect, PKCS11Error
from pkcs11.util.ec import encode_named_curve_parameters

from tsuba.core.errors import DecryptionError, KeyStoreError
from tsuba.core.keys.base import KeyInfo, KeyKind, Signature, Wrapped
from tsuba.core.keys.names import check_key_name, check_version

NONCE = 12
TAG_BITS = 128
_LABEL = re.compile(r"([a-z0-9][a-z0-9_-]{0,62})\.v([1-9][0-9]{0,8})")
_P256_PARAMS = encode_named_curve_parameters("secp256r1")
_ED25519_PARAMS = bytes.fromhex("06032b6570")  # OID 1.3.101.112
_TOMBSTONE = b"tsuba: retired"
_PRIVATE = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.PRIVATE: True}
T = TypeVar("T")

_libs: dict[str, Any] = {}
_shared: dict[tuple[str, str], _Shared] = {}
_registry_lock = threading.Lock()


@dataclass
class _Shared:
    session: Any
    pin_digest: bytes
    mechanisms: frozenset[Mechanism]
    lock: threading.RLock = field(default_factory=threading.RLock)


@dataclass
class _Version:
    number: int
    secret: Any = None  # SecretKey or PrivateKey
    public: Any = None
    retired: bool = False
    duplicates: int = 0


@dataclass
class _Key:
    name: str
    kind: KeyKind
    versions: dict[int, _Version]

    @property
    def current(self) -> int:
        return max(self.versions)


def _label(name: str, version: int) -> str:
    return f"{name}.v{version}"


def _digest(pin: str) -> bytes:
    return hashlib.sha256(pin.encode()).digest()


class Pkcs11KeyManager:
    """A :class:`~tsuba.core.keys.base.KeyManager` over a PKCS#11 token."""

    backend = "pkcs11"

    def __init__(self, module: str, token_label: str, pin: str) -> None:
        self.module = module
        self.token_label = token_label
        self._shared = _open_shared(module, token_label, pin)

    # -- plumbing ------------------------------------------------------------------------
    @contextmanager
    def _session(self, action: str) -> Iterator[Any]:
        with self._shared.lock:
            try:
                yield self._shared.session
            except PKCS11Error as exc:
                raise KeyStoreError(
                    f"PKCS#11 token '{self.token_label}' failed to {action}: "
                    f"{type(exc).__name__} {exc}".rstrip()
                ) from exc

    def _scan(
        self, session: Any, only: str | None = None, version: int | None = None
    ) -> dict[str, _Key]:
        """Our keys on the token, from every object or, given ``version``, from one label."""
        kinds: dict[str, KeyKind] = {}
        versions: dict[str, dict[int, _Version]] = {}
        template = None
        if only is not None and version is not None:
            template = {Attribute.LABEL: _label(only, version)}
        for obj in session.get_objects(template):
            match = _LABEL.fullmatch(obj[Attribute.LABEL] or "")
            if match is None or (only is not None and match.group(1) != only):
                continue
            name, number = match.group(1), int(match.group(2))
            cls = obj[Attribute.CLASS]
            if cls == ObjectClass.DATA:
                if bytes(obj[Attribute.VALUE]) != _TOMBSTONE:
                    continue
            else:
                kind = _kind_of(obj, cls)
                if kind is None:
                    continue  # not one of ours
                seen = kinds.setdefault(name, kind)
                if seen is not kind:
                    raise KeyStoreError(
                        f"PKCS#11 token '{self.token_label}' holds objects of two kinds for "
                        f"key '{name}' ({seen.value}, {kind.value}): remove the foreign ones"
                    )
            entry = versions.setdefault(name, {}).setdefault(number, _Version(number))
            if cls == ObjectClass.DATA:
                entry.retired = True
            elif cls == ObjectClass.PUBLIC_KEY:
                entry.public = obj
            elif entry.secret is not None:
                entry.duplicates += 1
            else:
                entry.secret = obj
        return {name: _Key(name, kind, versions[name]) for name, kind in kinds.items()}

    def _key(self, session: Any, name: str, version: int | None = None) -> _Key:
        """Key ``name`` with all its versions, or only ``version`` (one lookup by label)."""
        check_key_name(name)
        key = self._scan(session, only=name, version=version).get(name)
        if key is None and version is not None:
            key = self._scan(session, only=name).get(name)
        if key is None:
            raise KeyStoreError(
                f"no key named '{name}' on PKCS#11 token '{self.token_label}': create it with "
                f"'tsuba keys create {name} --kind ...'"
            )
        return key

    def _live(self, key: _Key, number: int) -> _Version:
        version = key.versions.get(number)
        if version is None:
            raise KeyStoreError(f"key '{key.name}' has no version {number}")
        if version.retired or version.secret is None:
            raise KeyStoreError(
                f"key '{key.name}' version {number} is retired: what it protected can no "
                "longer be decrypted or signed"
            )
        if version.duplicates:
            raise KeyStoreError(
                f"PKCS#11 token '{self.token_label}' holds {version.duplicates + 1} objects "
                f"labelled '{_label(key.name, number)}': remove the duplicates"
            )
        return version

    def _require(self, key: _Key, *kinds: KeyKind) -> None:
        if key.kind not in kinds:
            wanted = " or ".join(k.value for k in kinds)
            raise KeyStoreError(
                f"key '{key.name}' is {key.kind.value}; this needs a {wanted} key"
            )

    def _generate(self, session: Any, name: str, kind: KeyKind, number: int) -> None:
        label = _label(name, number)
        ident = label.encode()
        if kind is KeyKind.AES256_GCM:
            session.generate_key(
                KeyType.AES, 256, label=label, id=ident, store=True, template=_PRIVATE,
                capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
            )
        elif kind is KeyKind.HMAC_SHA256:
            session.generate_key(
                KeyType.GENERIC_SECRET, 256, label=label, id=ident, store=True,
                template=_PRIVATE, capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            )
        else:
            if kind is KeyKind.ED25519 and Mechanism.EDDSA not in self._shared.mechanisms:
                raise KeyStoreError(
                    f"PKCS#11 token '{self.token_label}' does not offer CKM_EDDSA: use "
                    "--kind ecdsa-p256"
                )
            key_type = KeyType.EC_EDWARDS if kind is KeyKind.ED25519 else KeyType.EC
            params = _ED25519_PARAMS if kind is KeyKind.ED25519 else _P256_PARAMS
            domain = session.create_domain_parameters(
                key_type, {Attribute.EC_PARAMS: params}, local=True
            )
            domain.generate_keypair(
                store=True, label=label, id=ident, private_template=_PRIVATE,
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            )

    # -- KeyManager ----------------------------------------------------------------------
    def create(self, name: str, kind: KeyKind, *, exist_ok: bool = False) -> KeyInfo:
        check_key_name(name)
        kind = KeyKind(kind)
        with self._session("create a key") as session:
            existing = self._scan(session, only=name).get(name)
            if existing is not None:
                if exist_ok and existing.kind is kind:
                    return self._info(existing)
                raise KeyStoreError(
                    f"key '{name}' already exists on PKCS#11 token '{self.token_label}' "
                    f"(kind {existing.kind.value})"
                )
            self._generate(session, name, kind, 1)
            return self._info(self._key(session, name))

    def info(self, name: str) -> KeyInfo:
        with self._session("read a key") as session:
            return self._info(self._key(session, name))

    def list_keys(self) -> list[KeyInfo]:
        with self._session("list keys") as session:
            return [self._info(k) for _, k in sorted(self._scan(session).items())]

    def rotate(self, name: str) -> KeyInfo:
        with self._session("rotate a key") as session:
            key = self._key(session, name)
            self._generate(session, name, key.kind, key.current + 1)
            return self._info(self._key(session, name))

    def retire(self, name: str, version: int) -> KeyInfo:
        check_version(version)
        with self._session("retire a key version") as session:
            key = self._key(session, name)
            entry = key.versions.get(version)
            if entry is None:
                raise KeyStoreError(f"key '{name}' has no version {version}")
            if version == key.current:
                raise KeyStoreError(
                    f"cannot retire version {version} of key '{name}': it is the current "
                    f"version; run 'tsuba keys rotate {name}' first"
                )
            if not entry.retired:
                session.create_object(
                    {
                        Attribute.CLASS: ObjectClass.DATA,
                        Attribute.TOKEN: True,
                        Attribute.PRIVATE: True,
                        Attribute.LABEL: _label(name, version),
                        Attribute.APPLICATION: "tsuba",
                        Attribute.VALUE: _TOMBSTONE,
                    }
                )
            label = _label(name, version)
            for cls in (ObjectClass.SECRET_KEY, ObjectClass.PRIVATE_KEY):
                for obj in list(session.get_objects({Attribute.CLASS: cls,
                                                     Attribute.LABEL: label})):
                    obj.destroy()
            return self._info(self._key(session, name))

    def wrap(self, name: str, plaintext: bytes, aad: bytes = b"") -> Wrapped:
        with self._session("wrap") as session:
            key = self._key(session, name)
            self._require(key, KeyKind.AES256_GCM)
            number = key.current
            secret = self._live(key, number).secret
            nonce = os.urandom(NONCE)
            sealed = secret.encrypt(
                plaintext, mechanism=Mechanism.AES_GCM,
                mechanism_param=pkcs11.GCMParams(nonce, aad or None, TAG_BITS),
            )
            return Wrapped(key_name=name, version=number, ciphertext=nonce + bytes(sealed))

    def unwrap(self, wrapped: Wrapped, aad: bytes = b"") -> bytes:
        with self._session("unwrap") as session:
            key = self._key(session, wrapped.key_name, check_version(wrapped.version))
            self._require(key, KeyKind.AES256_GCM)
            secret = self._live(key, wrapped.version).secret
            blob = wrapped.ciphertext
            if len(blob) < NONCE + TAG_BITS // 8:
                raise DecryptionError(
                    f"wrapped key for '{wrapped.key_name}' is truncated ({len(blob)} bytes)"
                )
            try:
                return bytes(
                    secret.decrypt(
                        blob[NONCE:], mechanism=Mechanism.AES_GCM,
                        mechanism_param=pkcs11.GCMParams(blob[:NONCE], aad or None, TAG_BITS),
                    )
                )
            except PKCS11Error:
                raise DecryptionError(
                    f"unwrap with key '{wrapped.key_name}' version {wrapped.version} failed: "
                    "wrong associated data or tampered ciphertext"
                ) from None

    def sign(self, name: str, data: bytes) -> Signature:
        with self._session("sign") as session:
            key = self._key(session, name)
            self._require(key, KeyKind.ED25519, KeyKind.ECDSA_P256)
            number = key.current
            private = self._live(key, number).secret
            if key.kind is KeyKind.ED25519:
                value = bytes(private.sign(data, mechanism=Mechanism.EDDSA))
                algorithm = "ed25519"
            else:
                digest = hashes.Hash(hashes.SHA256())
                digest.update(data)
                raw = bytes(private.sign(digest.finalize(), mechanism=Mechanism.ECDSA))
                half = len(raw) // 2
                value = encode_dss_signature(
                    int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
                )
                algorithm = "ecdsa-p256-sha256"
            return Signature(key_name=name, version=number, algorithm=algorithm, value=value)

    def public_key_pem(self, name: str, version: int | None = None) -> bytes:
        with self._session("export a public key") as session:
            key = self._key(session, name)
            self._require(key, KeyKind.ED25519, KeyKind.ECDSA_P256)
            number = key.current if version is None else check_version(version)
            entry = key.versions.get(number)
            if entry is None or entry.public is None:
                raise KeyStoreError(f"key '{name}' has no public key for version {number}")
            point = _ec_point(bytes(entry.public[Attribute.EC_POINT]))
            public: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
            if key.kind is KeyKind.ED25519:
                public = ed25519.Ed25519PublicKey.from_public_bytes(point)
            else:
                public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
            return public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )

    def hmac(self, name: str, data: bytes) -> bytes:
        with self._session("compute an HMAC") as session:
            key = self._key(session, name)
            self._require(key, KeyKind.HMAC_SHA256)
            secret = self._live(key, key.current).secret
            return bytes(secret.sign(data, mechanism=Mechanism.SHA256_HMAC))

    def _info(self, key: _Key) -> KeyInfo:
        return KeyInfo(
            name=key.name,
            kind=key.kind,
            current_version=key.current,
            versions=tuple(sorted(key.versions)),
            retired=tuple(sorted(n for n, v in key.versions.items() if v.retired)),
            backend=self.backend,
            labels={"token": self.token_label},
        )


def _kind_of(obj: Any, cls: ObjectClass) -> KeyKind | None:
    if cls not in (ObjectClass.SECRET_KEY, ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
        return None
    key_type = obj[Attribute.KEY_TYPE]
    if cls == ObjectClass.SECRET_KEY:
        if key_type == KeyType.AES:
            return KeyKind.AES256_GCM
        return KeyKind.HMAC_SHA256 if key_type == KeyType.GENERIC_SECRET else None
    if key_type == KeyType.EC_EDWARDS:
        return KeyKind.ED25519
    if key_type == KeyType.EC:
        return KeyKind.ECDSA_P256 if bytes(obj[Attribute.EC_PARAMS]) == _P256_PARAMS else None
    return None


def _ec_point(value: bytes) -> bytes:
    """The raw point from CKA_EC_POINT, which tokens give DER-wrapped (04 len ...) or raw."""
    if len(value) >= 2 and value[0] == 0x04 and value[1] == len(value) - 2:
        return value[2:]
    return value


def _open_shared(module: str, token_label: str, pin: str) -> _Shared:
    with _registry_lock:
        shared = _shared.get((module, token_label))
        if shared is not None:
            if not std_hmac.compare_digest(shared.pin_digest, _digest(pin)):
                raise KeyStoreError(f"PKCS#11 login to token '{token_label}' failed: wrong PIN")
            return shared
        lib = _libs.get(module)
        if lib is None:
            lib = _guard(lambda: pkcs11.lib(module),
                         f"cannot load PKCS#11 module {module}")
            _libs[module] = lib
        try:
            token = lib.get_token(token_label=token_label)
        except pkcs11.NoSuchToken:
            raise KeyStoreError(
                f"no PKCS#11 token labelled '{token_label}' in module {module}"
            ) from None
        except PKCS11Error as exc:
            raise KeyStoreError(f"PKCS#11 module {module} failed to list tokens: {exc}") from exc
        try:
            session = token.open(rw=True, user_pin=pin)
        except PinIncorrect:
            raise KeyStoreError(
                f"PKCS#11 login to token '{token_label}' failed: wrong PIN"
            ) from None
        except PKCS11Error as exc:
            raise KeyStoreError(
                f"PKCS#11 login to token '{token_label}' failed: {type(exc).__name__} {exc}"
            ) from exc
        mechanisms = frozenset(token.slot.get_mechanisms())
        shared = _Shared(session=session, pin_digest=_digest(pin), mechanisms=mechanisms)
        _shared[(module, token_label)] = shared
        return shared


def _guard(make: Callable[[], T], what: str) -> T:
    try:
        return make()
    except (OSError, PKCS11Error, RuntimeError) as exc:
        raise KeyStoreError(f"{what}: {exc}") from exc
