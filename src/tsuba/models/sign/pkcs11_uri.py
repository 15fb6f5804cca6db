"""PKCS#11 URIs (RFC 7512) naming a signing key on a token, as model_signing accepts them.

``pkcs11:token=<label>;object=<key>?module-path=<library>&pin-source=<file>`` names a tsuba
key (``object``) on a token.  The module and PIN may instead come from the settings
(``keys.pkcs11_module``, ``keys.pkcs11_pin``).  ``pin-value`` works too, but a PIN on a
command line is visible to every local user, so ``pin-source`` or the settings are better.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from tsuba.core.errors import InputError

_PATH_ATTRS = {"token", "object", "id", "type", "manufacturer", "model", "serial",
               "library-manufacturer", "library-description", "library-version", "slot-id",
               "slot-description", "slot-manufacturer"}
_QUERY_ATTRS = {"module-path", "module-name", "pin-value", "pin-source"}


@dataclass(frozen=True)
class Pkcs11Uri:
    token: str
    key: str
    module: str | None = None
    pin: str | None = None

    def __repr__(self) -> str:  # never show the PIN
        return f"Pkcs11Uri(token={self.token!r}, key={self.key!r}, module={self.module!r})"


def _pairs(text: str, sep: str, allowed: set[str], where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if not text:
        return out
    for part in text.split(sep):
        name, eq, value = part.partition("=")
        if not eq:
            raise InputError(f"PKCS#11 URI {where} attribute {name!r} has no value")
        name = name.strip().lower()
        if name not in allowed:
            raise InputError(f"PKCS#11 URI {where} attribute {name!r} is not supported")
        if name in out:
            raise InputError(f"PKCS#11 URI repeats {name!r}")
        out[name] = unquote(value)
    return out


def parse_pkcs11_uri(uri: str) -> Pkcs11Uri:
    if not uri.lower().startswith("pkcs11:"):
        raise InputError(
            "a PKCS#11 key is named by a URI like "
            "pkcs11:token=LABEL;object=KEY?module-path=/path/to/module.so&pin-source=FILE"
        )
    path, _, query = uri[len("pkcs11:"):].partition("?")
    attrs = _pairs(path, ";", _PATH_ATTRS, "path")
    params = _pairs(query, "&", _QUERY_ATTRS, "query")
    if "token" not in attrs or "object" not in attrs:
        raise InputError("PKCS#11 URI must name the token (token=...) and the key (object=...)")
    pin = params.get("pin-value")
    source = params.get("pin-source")
    if pin is not None and source is not None:
        raise InputError("PKCS#11 URI gives both pin-value and pin-source: keep one")
    if source is not None:
        file = Path(source.removeprefix("file:"))
        try:
            pin = file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise InputError(f"cannot read the PIN from {file}: {exc.strerror}") from None
    return Pkcs11Uri(
        token=attrs["token"], key=attrs["object"], module=params.get("module-path"), pin=pin
    )


__all__ = ["Pkcs11Uri", "parse_pkcs11_uri"]
