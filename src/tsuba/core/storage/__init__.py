"""Relational storage: SQLite by default, PostgreSQL when ``database_url`` says so."""

from tsuba.core.storage.base import Base
from tsuba.core.storage.engine import (
    connect,
    dialect_name,
    open_engine,
    reader,
    session_factory,
)
from tsuba.core.storage.migrate import current_heads, upgrade

__all__ = [
    "Base",
    "connect",
    "current_heads",
    "dialect_name",
    "open_engine",
    "reader",
    "session_factory",
    "upgrade",
]
