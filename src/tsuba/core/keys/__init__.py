"""Key management: one interface, several backends, and envelope encryption on top."""

from tsuba.core.keys.base import KeyInfo, KeyKind, KeyManager, Signature, Wrapped

__all__ = ["KeyInfo", "KeyKind", "KeyManager", "Signature", "Wrapped"]
