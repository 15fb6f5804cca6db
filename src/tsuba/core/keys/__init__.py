"""Key management: one interface, several backends, and envelope encryption on top.

``open_key_manager(settings)`` gives the configured backend; ``envelope.encrypt`` /
``envelope.decrypt`` / ``envelope.rewrap`` protect data with a fresh key per object.
"""

from tsuba.core.keys import envelope
from tsuba.core.keys.base import KeyInfo, KeyKind, KeyManager, Signature, Wrapped
from tsuba.core.keys.factory import open_key_manager

__all__ = [
    "KeyInfo",
    "KeyKind",
    "KeyManager",
    "Signature",
    "Wrapped",
    "envelope",
    "open_key_manager",
]
