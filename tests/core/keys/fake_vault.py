"""A stand-in for HashiCorp Vault's Transit engine, for tests only.

No Vault binary exists here, so this small HTTP server answers the Transit endpoints tsuba
uses with the JSON shapes Vault documents (https://developer.hashicorp.com/vault/api-docs/
secret/transit), doing the crypto for real with ``cryptography``.  It records every request
so tests can check what the backend sends.  Tests against a real Vault run when
TSUBA_VAULT_ADDR is set (see test_keys_vault.py).
"""

from __future__ import annotations

import base64
import json
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TOKEN = "s.test-token"


@dataclass
class Recorded:
    method: str
    path: str
    token: str | None
    body: dict[str, Any] | None


@dataclass
class _Key:
    type: str
    versions: dict[int, Any] = field(default_factory=dict)
    created: dict[int, datetime] = field(default_factory=dict)
    min_decryption_version: int = 1

    @property
    def latest(self) -> int:
        return max(self.versions)

    def add_version(self) -> None:
        n = max(self.versions, default=0) + 1
        if self.type == "ed25519":
            self.versions[n] = ed25519.Ed25519PrivateKey.generate()
        elif self.type == "ecdsa-p256":
            self.versions[n] = ec.generate_private_key(ec.SECP256R1())
        else:
            self.versions[n] = os.urandom(32)
        self.created[n] = datetime.now(UTC)


class FakeTransit:
    def __init__(self, mount: str = "transit") -> None:
        self.mount = mount
        self.keys: dict[str, _Key] = {}
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()

    # Each handler returns (status, json body or None).
    def handle(self, method: str, path: str, token: str | None, body: dict[str, Any] | None,
               ) -> tuple[int, dict[str, Any] | None]:
        with self.lock:
            self.requests.append(Recorded(method, path, token, body))
            if token != TOKEN:
                return 403, {"errors": ["permission denied"]}
            prefix = f"/v1/{self.mount}/"
            if not path.startswith(prefix):
                return 404, {"errors": [f"no handler for route '{path}'"]}
            parts = path[len(prefix):].split("/")
            body = body or {}
            try:
                return self._route(method, parts, body)
            except _Missing:
                return 404, {"errors": []}
            except _Bad as exc:
                return 400, {"errors": [str(exc)]}

    def _route(self, method: str, parts: list[str], body: dict[str, Any],
               ) -> tuple[int, dict[str, Any] | None]:
        if parts == ["keys"] and method in ("LIST", "GET"):
            if not self.keys:
                return 404, {"errors": []}
            return 200, {"data": {"keys": sorted(self.keys)}}
        if len(parts) == 2 and parts[0] == "keys":
            name = parts[1]
            if method == "POST":
                if name not in self.keys:
                    key = _Key(type=body.get("type", "aes256-gcm96"))
                    key.add_version()
                    self.keys[name] = key
                return 204, None
            if method == "GET":
                if name not in self.keys:
                    return 404, {"errors": []}
                return 200, {"data": self._describe(name)}
        if len(parts) == 3 and parts[0] == "keys":
            key = self._key(parts[1])
            if parts[2] == "rotate" and method == "POST":
                key.add_version()
                return 200, {"data": self._describe(parts[1])}
            if parts[2] == "config" and method == "POST":
                if "min_decryption_version" in body:
                    key.min_decryption_version = int(body["min_decryption_version"])
                return 200, {"data": self._describe(parts[1])}
        if len(parts) == 2 and method == "POST":
            op, name = parts
            key = self._key(name)
            if op == "encrypt":
                return 200, {"data": self._encrypt(key, body)}
            if op == "decrypt":
                return 200, {"data": self._decrypt(key, body)}
            if op == "sign":
                return 200, {"data": self._sign(key, body)}
            if op == "hmac":
                return 200, {"data": self._hmac(key, body)}
        return 404, {"errors": [f"no handler for route '{'/'.join(parts)}'"]}

    def _key(self, name: str) -> _Key:
        key = self.keys.get(name)
        if key is None:
            raise _Missing(name)
        return key

    def _describe(self, name: str) -> dict[str, Any]:
        key = self.keys[name]
        keys: dict[str, Any] = {}
        for n, material in key.versions.items():
            if key.type == "ed25519":
                raw = material.public_key().public_bytes(
                    serialization.Encoding.Raw, serialization.PublicFormat.Raw)
                keys[str(n)] = {"creation_time": key.created[n].isoformat(), "name": "ed25519",
                                "public_key": base64.b64encode(raw).decode()}
            elif key.type == "ecdsa-p256":
                pem = material.public_key().public_bytes(
                    serialization.Encoding.PEM,
                    serialization.PublicFormat.SubjectPublicKeyInfo).decode()
                keys[str(n)] = {"creation_time": key.created[n].isoformat(), "name": "P-256",
                                "public_key": pem}
            else:
                keys[str(n)] = int(key.created[n].timestamp())
        return {
            "name": name,
            "type": key.type,
            "latest_version": key.latest,
            "min_available_version": 0,
            "min_decryption_version": key.min_decryption_version,
            "min_encryption_version": 0,
            "deletion_allowed": False,
            "exportable": False,
            "supports_encryption": key.type == "aes256-gcm96",
            "supports_signing": key.type in ("ed25519", "ecdsa-p256"),
            "keys": keys,
        }

    def _encrypt(self, key: _Key, body: dict[str, Any]) -> dict[str, Any]:
        if key.type != "aes256-gcm96":
            raise _Bad(f"key type {key.type} does not support encryption")
        plaintext = base64.b64decode(body["plaintext"])
        aad = base64.b64decode(body.get("associated_data", ""))
        nonce = os.urandom(12)
        ct = AESGCM(key.versions[key.latest]).encrypt(nonce, plaintext, aad)
        text = f"vault:v{key.latest}:" + base64.b64encode(nonce + ct).decode()
        return {"ciphertext": text, "key_version": key.latest}

    def _decrypt(self, key: _Key, body: dict[str, Any]) -> dict[str, Any]:
        _, version_text, payload = str(body["ciphertext"]).split(":", 2)
        version = int(version_text[1:])
        if version < key.min_decryption_version:
            raise _Bad("ciphertext or signature version is disallowed by policy (too old)")
        if version not in key.versions:
            raise _Bad("invalid key version")
        blob = base64.b64decode(payload)
        aad = base64.b64decode(body.get("associated_data", ""))
        try:
            plaintext = AESGCM(key.versions[version]).decrypt(blob[:12], blob[12:], aad)
        except InvalidTag:
            raise _Bad("cipher: message authentication failed") from None
        return {"plaintext": base64.b64encode(plaintext).decode()}

    def _sign(self, key: _Key, body: dict[str, Any]) -> dict[str, Any]:
        data = base64.b64decode(body["input"])
        private = key.versions[key.latest]
        if key.type == "ed25519":
            value = private.sign(data)
        elif key.type == "ecdsa-p256":
            if body.get("hash_algorithm") != "sha2-256" or body.get(
                "marshaling_algorithm", "asn1"
            ) != "asn1":
                raise _Bad("this stand-in signs only sha2-256 with asn1 marshaling")
            value = private.sign(data, ec.ECDSA(hashes.SHA256()))
        else:
            raise _Bad(f"key type {key.type} does not support signing")
        text = f"vault:v{key.latest}:" + base64.b64encode(value).decode()
        return {"signature": text, "key_version": key.latest}

    def _hmac(self, key: _Key, body: dict[str, Any]) -> dict[str, Any]:
        if key.type != "hmac" or body.get("algorithm", "sha2-256") != "sha2-256":
            raise _Bad("this stand-in computes HMACs only with hmac keys and sha2-256")
        mac = hmac.HMAC(key.versions[key.latest], hashes.SHA256())
        mac.update(base64.b64decode(body["input"]))
        text = f"vault:v{key.latest}:" + base64.b64encode(mac.finalize()).decode()
        return {"hmac": text}


class _Bad(Exception):
    pass


class _Missing(_Bad):
    pass


def serve(transit: FakeTransit) -> ThreadingHTTPServer:
    """Start the stand-in on a free loopback port; call ``shutdown()`` when done."""

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            path = self.path.split("?", 1)[0]
            status, payload = transit.handle(
                self.command, path, self.headers.get("X-Vault-Token"), body
            )
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_LIST = do_DELETE = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
