"""HashiCorp Vault Transit backend: keys stay in Vault, tsuba sends data to be processed.

Written against Vault's documented Transit API through ``hvac``:

=====================  =====================================================================
tsuba                  Vault Transit
=====================  =====================================================================
create                 ``POST /keys/:name`` with ``type`` aes256-gcm96 | ed25519 | ecdsa-p256
                       | hmac (``key_size`` 32; hvac does not list ``hmac``, so it is posted
                       directly)
info, list_keys        ``GET /keys/:name``, ``LIST /keys``
rotate                 ``POST /keys/:name/rotate``
retire                 ``POST /keys/:name/config`` with ``min_decryption_version`` = v + 1
wrap / unwrap          ``POST /encrypt/:name``, ``/decrypt/:name`` with ``associated_data``
sign                   ``POST /sign/:name`` (ECDSA: ``hash_algorithm`` sha2-256, ``asn1``)
public_key_pem         ``GET /keys/:name`` → ``keys[v].public_key``
hmac                   ``POST /hmac/:name`` with ``algorithm`` sha2-256
=====================  =====================================================================

Vault retires by raising ``min_decryption_version``, which retires every older version
too; so ``retire`` only accepts the oldest live version and says so otherwise, rather than
retiring more than was asked.  Vault keeps the key material of retired versions (it can be
trimmed with Vault's own ``trim`` endpoint); tsuba only relies on Vault refusing them.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import hvac
import hvac.exceptions
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tsuba.core.errors import DecryptionError, KeyStoreError
from tsuba.core.keys.base import KeyInfo, KeyKind, Signature, Wrapped
from tsuba.core.keys.names import check_key_name, check_version

VAULT_TYPES: dict[KeyKind, str] = {
    KeyKind.AES256_GCM: "aes256-gcm96",
    KeyKind.ED25519: "ed25519",
    KeyKind.ECDSA_P256: "ecdsa-p256",
    KeyKind.HMAC_SHA256: "hmac",
}
_KINDS = {v: k for k, v in VAULT_TYPES.items()}
_VERSIONED = re.compile(r"vault:v([1-9][0-9]{0,8}):(.+)", re.DOTALL)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class VaultKeyManager:
    """A :class:`~tsuba.core.keys.base.KeyManager` over a Vault Transit mount."""

    backend = "vault"

    def __init__(
        self,
        addr: str,
        token: str,
        *,
        mount: str = "transit",
        namespace: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.addr = addr
        self.mount = mount
        self._client = hvac.Client(url=addr, token=token, namespace=namespace, timeout=timeout)
        self._transit = self._client.secrets.transit

    @contextmanager
    def _call(self, action: str, name: str | None = None) -> Iterator[None]:
        """Turn hvac and transport failures into one clear KeyStoreError."""
        where = f"Vault at {self.addr}"
        try:
            yield
        except hvac.exceptions.InvalidPath:
            if name is None:
                raise KeyStoreError(f"{where} has no transit mount '{self.mount}'") from None
            raise KeyStoreError(
                f"no key named '{name}' in {where} (mount '{self.mount}'): create it with "
                f"'tsuba keys create {name} --kind ...'"
            ) from None
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
            raise KeyStoreError(
                f"{where} refused to {action}: the token lacks permission or has expired"
            ) from None
        except hvac.exceptions.VaultDown:
            raise KeyStoreError(f"{where} is sealed or down: cannot {action}") from None
        except hvac.exceptions.InvalidRequest as exc:
            detail = "; ".join(str(e) for e in (exc.errors or [])) or str(exc)
            if "too old" in detail or "disallowed by policy" in detail:
                raise KeyStoreError(
                    f"key '{name}' version is retired in {where}: what it protected can no "
                    "longer be decrypted"
                ) from None
            if action == "unwrap":
                raise DecryptionError(
                    f"unwrap with key '{name}' failed in {where}: wrong associated data or "
                    f"tampered ciphertext ({detail})"
                ) from None
            raise KeyStoreError(f"{where} rejected the request to {action}: {detail}") from None
        except hvac.exceptions.VaultError as exc:
            raise KeyStoreError(f"{where} failed to {action}: {exc}") from None
        except requests.RequestException as exc:
            raise KeyStoreError(
                f"cannot reach {where} to {action}: {type(exc).__name__}"
            ) from None

    def _read(self, name: str) -> dict[str, Any]:
        found = self._find(name)
        if found is None:
            raise KeyStoreError(
                f"no key named '{name}' in Vault at {self.addr} (mount '{self.mount}'): "
                f"create it with 'tsuba keys create {name} --kind ...'"
            )
        return found

    def _find(self, name: str) -> dict[str, Any] | None:
        """The key's description, or None when Vault has no key of that name."""
        check_key_name(name)
        try:
            with self._call("read a key", name):
                response = self._transit.read_key(name=name, mount_point=self.mount)
        except KeyStoreError as exc:
            if isinstance(exc.__context__, hvac.exceptions.InvalidPath):
                return None
            raise
        return _data(response, "read a key")

    def _kind(self, name: str, data: dict[str, Any]) -> KeyKind:
        kind = _KINDS.get(str(data.get("type")))
        if kind is None:
            raise KeyStoreError(
                f"Vault key '{name}' has type {data.get('type')!r}, which tsuba does not use"
            )
        return kind

    def _info_from(self, name: str, data: dict[str, Any]) -> KeyInfo:
        kind = self._kind(name, data)
        versions = tuple(sorted(int(v) for v in data.get("keys", {})))
        latest = int(data.get("latest_version", max(versions, default=0)))
        min_decrypt = int(data.get("min_decryption_version", 1))
        return KeyInfo(
            name=name,
            kind=kind,
            current_version=latest,
            versions=versions,
            retired=tuple(v for v in versions if v < min_decrypt),
            created_at=_created(data.get("keys", {}).get(str(versions[0])) if versions else None),
            backend=self.backend,
            labels={"mount": self.mount},
        )

    def _require(self, name: str, data: dict[str, Any], *kinds: KeyKind) -> KeyKind:
        kind = self._kind(name, data)
        if kind not in kinds:
            wanted = " or ".join(k.value for k in kinds)
            raise KeyStoreError(f"key '{name}' is {kind.value}; this needs a {wanted} key")
        return kind

    # -- KeyManager ----------------------------------------------------------------------
    def create(self, name: str, kind: KeyKind, *, exist_ok: bool = False) -> KeyInfo:
        kind = KeyKind(kind)
        existing = self._find(name)
        if existing is not None:
            if exist_ok and self._kind(name, existing) is kind:
                return self._info_from(name, existing)
            raise KeyStoreError(
                f"key '{name}' already exists in Vault at {self.addr} "
                f"(type {existing.get('type')})"
            )
        with self._call("create a key", name):
            if kind is KeyKind.HMAC_SHA256:
                path = hvac.utils.format_url(
                    "/v1/{mount_point}/keys/{name}", mount_point=self.mount, name=name
                )
                self._client.adapter.post(url=path, json={"type": "hmac", "key_size": 32})
            else:
                self._transit.create_key(
                    name=name, key_type=VAULT_TYPES[kind], mount_point=self.mount
                )
        return self.info(name)

    def info(self, name: str) -> KeyInfo:
        return self._info_from(name, self._read(name))

    def list_keys(self) -> list[KeyInfo]:
        try:
            with self._call("list keys"):
                response = self._transit.list_keys(mount_point=self.mount)
        except KeyStoreError as exc:
            cause = exc.__context__
            if isinstance(cause, hvac.exceptions.InvalidPath) and not cause.errors:
                return []  # Vault answers an empty list with a bare 404
            raise
        names = _data(response, "list keys").get("keys", [])
        infos = []
        for name in sorted(str(n) for n in names):
            data = self._read(name)
            if str(data.get("type")) in _KINDS:
                infos.append(self._info_from(name, data))
        return infos

    def rotate(self, name: str) -> KeyInfo:
        check_key_name(name)
        with self._call("rotate a key", name):
            self._transit.rotate_key(name=name, mount_point=self.mount)
        return self.info(name)

    def retire(self, name: str, version: int) -> KeyInfo:
        check_version(version)
        info = self.info(name)
        if version not in info.versions:
            raise KeyStoreError(f"key '{name}' has no version {version}")
        if version == info.current_version:
            raise KeyStoreError(
                f"cannot retire version {version} of key '{name}': it is the current "
                f"version; run 'tsuba keys rotate {name}' first"
            )
        if version in info.retired:
            return info
        oldest_live = min(v for v in info.versions if v not in info.retired)
        if version != oldest_live:
            raise KeyStoreError(
                f"Vault retires versions oldest first: retire version {oldest_live} of key "
                f"'{name}' before version {version}"
            )
        with self._call("retire a key version", name):
            self._transit.update_key_configuration(
                name=name, min_decryption_version=version + 1, mount_point=self.mount
            )
        return self.info(name)

    def wrap(self, name: str, plaintext: bytes, aad: bytes = b"") -> Wrapped:
        check_key_name(name)
        with self._call("wrap", name):
            response = self._transit.encrypt_data(
                name=name,
                plaintext=_b64(plaintext),
                associated_data=_b64(aad) if aad else None,
                mount_point=self.mount,
            )
        ciphertext = str(_data(response, "wrap").get("ciphertext", ""))
        version, _ = _versioned(ciphertext, "ciphertext")
        return Wrapped(key_name=name, version=version, ciphertext=ciphertext.encode("ascii"))

    def unwrap(self, wrapped: Wrapped, aad: bytes = b"") -> bytes:
        name = check_key_name(wrapped.key_name)
        check_version(wrapped.version)
        try:
            text = wrapped.ciphertext.decode("ascii")
            version, _ = _versioned(text, "ciphertext")
        except (UnicodeDecodeError, KeyStoreError):
            raise DecryptionError(
                f"wrapped key for '{name}' is not a Vault ciphertext"
            ) from None
        if version != wrapped.version:
            raise DecryptionError(
                f"wrapped key for '{name}' says version {version}, its envelope says "
                f"{wrapped.version}: tampered"
            )
        with self._call("unwrap", name):
            response = self._transit.decrypt_data(
                name=name,
                ciphertext=text,
                associated_data=_b64(aad) if aad else None,
                mount_point=self.mount,
            )
        try:
            return base64.b64decode(str(_data(response, "unwrap").get("plaintext", "")),
                                    validate=True)
        except (binascii.Error, ValueError):
            raise KeyStoreError(f"Vault at {self.addr} returned a malformed plaintext") from None

    def sign(self, name: str, data: bytes) -> Signature:
        kind = self._require(name, self._read(name), KeyKind.ED25519, KeyKind.ECDSA_P256)
        extra: dict[str, str] = {}
        if kind is KeyKind.ECDSA_P256:
            extra = {"hash_algorithm": "sha2-256", "marshaling_algorithm": "asn1"}
        with self._call("sign", name):
            response = self._transit.sign_data(
                name=name, hash_input=_b64(data), mount_point=self.mount, **extra
            )
        version, value = _versioned(str(_data(response, "sign").get("signature", "")),
                                    "signature")
        algorithm = "ed25519" if kind is KeyKind.ED25519 else "ecdsa-p256-sha256"
        return Signature(key_name=name, version=version, algorithm=algorithm, value=value)

    def public_key_pem(self, name: str, version: int | None = None) -> bytes:
        data = self._read(name)
        kind = self._require(name, data, KeyKind.ED25519, KeyKind.ECDSA_P256)
        number = int(data.get("latest_version", 0)) if version is None else check_version(version)
        entry = data.get("keys", {}).get(str(number))
        if not isinstance(entry, dict) or not entry.get("public_key"):
            raise KeyStoreError(f"key '{name}' has no public key for version {number}")
        text = str(entry["public_key"])
        try:
            if kind is KeyKind.ED25519 and "BEGIN" not in text:
                public: Any = ed25519.Ed25519PublicKey.from_public_bytes(
                    base64.b64decode(text, validate=True)
                )
            else:
                public = serialization.load_pem_public_key(text.encode("ascii"))
        except (binascii.Error, ValueError):
            raise KeyStoreError(
                f"Vault at {self.addr} returned a malformed public key for '{name}'"
            ) from None
        pem: bytes = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem

    def hmac(self, name: str, data: bytes) -> bytes:
        # Vault computes HMACs with any key type; tsuba keeps kinds apart, so check first.
        self._require(name, self._read(name), KeyKind.HMAC_SHA256)
        with self._call("compute an HMAC", name):
            response = self._transit.generate_hmac(
                name=name, hash_input=_b64(data), algorithm="sha2-256", mount_point=self.mount
            )
        _, value = _versioned(str(_data(response, "compute an HMAC").get("hmac", "")), "hmac")
        return value


def _data(response: Any, action: str) -> dict[str, Any]:
    data = response.get("data") if isinstance(response, dict) else None
    if not isinstance(data, dict):
        raise KeyStoreError(f"Vault gave no data when asked to {action}")
    return data


def _versioned(text: str, what: str) -> tuple[int, bytes]:
    """Split Vault's ``vault:v<N>:<base64>`` into the version and the decoded bytes."""
    match = _VERSIONED.fullmatch(text)
    if match is None:
        raise KeyStoreError(f"Vault returned a malformed {what}")
    try:
        return int(match.group(1)), base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise KeyStoreError(f"Vault returned a malformed {what}") from None


def _created(entry: object) -> datetime | None:
    try:
        if isinstance(entry, int | float) and not isinstance(entry, bool):
            return datetime.fromtimestamp(entry, UTC)
        if isinstance(entry, dict) and entry.get("creation_time"):
            return datetime.fromisoformat(str(entry["creation_time"]).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    return None
