"""Addresses the gateway refuses: a stored deny list and the cached check of each request.

The list lives in one table (``soar_blocked_ips``) so that every gateway process, on any
machine sharing the database, refuses the same addresses.  Every change bumps a version
row in its transaction.  ``IpBlocklist`` keeps the whole list in memory and reads the
version at most every ``refresh_seconds`` (1 s by default), re-reading the list only when
the version moved: a block takes effect everywhere within that time, a request pays a few
hash lookups, not a query, and a long list is not re-parsed while it is unchanged.
When the list cannot be read the check raises (fail closed), like the key and policy
checks beside it.

Networks wider than /8 (IPv4) or /32 (IPv6) are refused: a playbook filling in an address
from an alert must never be able to shut the gateway to everyone.  The gateway checks the
address its server reports (the TCP peer): behind a proxy that is the proxy's, so block
there, or have the proxy refuse the client.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, delete, or_, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from tsuba.core.errors import ConflictError, InputError, StorageError
from tsuba.core.events import EventClass, Outcome, SecurityEvent, Severity
from tsuba.core.storage.engine import reader, storage_error
from tsuba.core.storage.sessions import versioned_write
from tsuba.soar.models import BlockedIpRow, BlocklistVersionRow

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_WIDEST = {4: 8, 6: 32}
_WHAT = "IP block list"
Emit = Callable[[SecurityEvent], object]
VERSION_ROW = 1
_VERSION = select(BlocklistVersionRow.version).where(BlocklistVersionRow.id == VERSION_ROW)


@dataclass(frozen=True, slots=True)
class BlockedNetwork:
    network: str
    reason: str
    blocked_by: str
    blocked_at: datetime
    expires_at: datetime | None
    incident_id: int | None

    def to_dict(self) -> dict[str, object]:
        return {"network": self.network, "reason": self.reason, "blocked_by": self.blocked_by,
                "blocked_at": self.blocked_at.isoformat(),
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
                "incident_id": self.incident_id}


def parse_network(text: str) -> Network:
    """An address (``203.0.113.9``) or network (``203.0.113.0/24``) to block."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("an IP address or network is required (e.g. 203.0.113.9)")
    try:
        net = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise InputError(f"invalid IP address or network {text!r}: {exc}") from None
    if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped and \
            net.prefixlen >= 96:
        net = ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}")
    if net.prefixlen < _WIDEST[net.version]:
        raise InputError(f"network {net} is too wide to block: at most /{_WIDEST[net.version]}"
                         f" for IPv{net.version}")
    return net


def _info(row: BlockedIpRow) -> BlockedNetwork:
    return BlockedNetwork(row.network, row.reason, row.blocked_by, row.blocked_at,
                          row.expires_at, row.incident_id)


def _event(activity: str, entry: BlockedNetwork, actor: str, message: str) -> SecurityEvent:
    return SecurityEvent(
        event_class=EventClass.ENTITY_MANAGEMENT, activity=activity, severity=Severity.MEDIUM,
        actor=actor, resource=f"ip/{entry.network}", outcome=Outcome.SUCCESS, message=message,
        attributes={"change": "block_ip" if activity == "create" else "unblock_ip",
                    "block": entry.to_dict()},
    )


def block_network(
    engine: Engine, network: str, *, reason: str, actor: str,
    expires_at: datetime | None = None, incident_id: int | None = None,
    emit: Emit | None = None,
) -> tuple[BlockedNetwork, bool]:
    """Block ``network``; returns the entry and whether this call blocked it.

    An entry that is still in force is left as it is (the call reports it was already
    blocked); an expired one is renewed.  ``emit`` hears of a change after its commit.
    """
    entry, created = _block(engine, network, reason=reason, actor=actor,
                            expires_at=expires_at, incident_id=incident_id)
    if created and emit is not None:
        until = f" until {entry.expires_at.isoformat()}" if entry.expires_at else ""
        emit(_event("create", entry, actor, f"blocked {entry.network}{until}: {reason}"))
    return entry, created


def _block(
    engine: Engine, network: str, *, reason: str, actor: str,
    expires_at: datetime | None, incident_id: int | None,
) -> tuple[BlockedNetwork, bool]:
    net = str(parse_network(network))
    now = datetime.now(UTC)
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
        raise InputError("a block's expiry must be a future instant with a timezone")
    existing = blocked_entry(engine, net)
    if existing is not None and (existing.expires_at is None or existing.expires_at > now):
        return existing, False  # nothing to write, nothing for the checkers to re-read
    try:
        with _write(engine) as s:
            row = s.scalar(select(BlockedIpRow).where(BlockedIpRow.network == net))
            if row is not None and (row.expires_at is None or row.expires_at > now):
                return _info(row), False
            if row is None:
                row = BlockedIpRow(network=net)
                s.add(row)
            row.reason, row.blocked_by = reason[:4000], actor[:128]
            row.blocked_at, row.expires_at, row.incident_id = now, expires_at, incident_id
            s.flush()
            return _info(row), True
    except ConflictError:
        # Blocked at the same moment by another process: the same fact.
        entry = blocked_entry(engine, net)
        if entry is None:
            raise ConflictError(f"blocking {net} raced with its removal: try again") from None
        return entry, False


def _write(engine: Engine) -> AbstractContextManager[Session]:
    """A transaction that also bumps the list's version, so every checker re-reads it."""
    return versioned_write(engine, _WHAT, BlocklistVersionRow, VERSION_ROW)


def unblock_network(
    engine: Engine, network: str, *, actor: str = "system", emit: Emit | None = None,
) -> bool:
    """Lift a block; False when ``network`` was not blocked."""
    net = str(parse_network(network))
    entry = blocked_entry(engine, net)
    if entry is None:
        return False
    with _write(engine) as s:
        result = cast(CursorResult[Any], s.execute(
            delete(BlockedIpRow).where(BlockedIpRow.network == net)))
        removed = result.rowcount > 0
    if removed and emit is not None and entry is not None:
        emit(_event("delete", entry, actor, f"lifted the block of {net}"))
    return removed


def blocked_entry(engine: Engine, network: str) -> BlockedNetwork | None:
    """The stored entry for exactly ``network``, in force or expired."""
    net = str(parse_network(network))
    try:
        with Session(reader(engine)) as s:
            row = s.scalar(select(BlockedIpRow).where(BlockedIpRow.network == net))
            return _info(row) if row is not None else None
    except sa_exc.DBAPIError as exc:
        raise storage_error(exc, _WHAT) from exc


def list_blocked(engine: Engine, *, at: datetime | None = None) -> list[BlockedNetwork]:
    """The entries in force at ``at`` (now by default)."""
    when = at or datetime.now(UTC)
    query = select(BlockedIpRow).where(
        or_(BlockedIpRow.expires_at.is_(None), BlockedIpRow.expires_at > when)
    ).order_by(BlockedIpRow.network)
    try:
        with Session(reader(engine)) as s:
            return [_info(row) for row in s.scalars(query)]
    except sa_exc.DBAPIError as exc:
        raise storage_error(exc, _WHAT) from exc


def _in_force(engine: Engine) -> list[BlockedNetwork]:
    """``list_blocked`` without ORM objects: the checker's reload of a long list."""
    columns = (BlockedIpRow.network, BlockedIpRow.reason, BlockedIpRow.blocked_by,
               BlockedIpRow.blocked_at, BlockedIpRow.expires_at, BlockedIpRow.incident_id)
    query = select(*columns).where(or_(BlockedIpRow.expires_at.is_(None),
                                       BlockedIpRow.expires_at > datetime.now(UTC)))
    try:
        with reader(engine).connect() as conn:
            return [BlockedNetwork(*row) for row in conn.execute(query)]
    except sa_exc.DBAPIError as exc:
        raise storage_error(exc, _WHAT) from exc


class IpBlocklist:
    """The gateway's check: is this client address blocked?  Cached, thread-safe.

    Entries are kept in one hash table per prefix length, so a check costs one lookup per
    distinct prefix length in the list (a handful), however many entries there are.
    """

    def __init__(
        self, engine: Engine, *, refresh_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= refresh_seconds <= 60:
            raise ValueError("refresh_seconds must be between 0 and 60")
        self._engine = engine
        self._every = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded_at: float | None = None
        self._version: int | None = None
        # (IP version, prefix length, {network prefix bits: entry}), longest prefix first
        self._tables: list[tuple[int, int, dict[int, BlockedNetwork]]] = []

    def blocked(self, client_ip: str) -> BlockedNetwork | None:
        """The entry that blocks ``client_ip``, or None (also for an empty or odd address)."""
        self._refresh()
        if not client_ip or not self._tables:
            return None
        try:
            addr = ipaddress.ip_address(client_ip)
        except ValueError:
            return None
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        value, version = int(addr), addr.version
        bits = 32 if version == 4 else 128
        now: datetime | None = None
        for table_version, prefix, table in self._tables:
            if table_version != version:
                continue
            entry = table.get(value >> (bits - prefix))
            if entry is None:
                continue
            if entry.expires_at is None:
                return entry
            now = now or datetime.now(UTC)
            if entry.expires_at > now:
                return entry
        return None

    def invalidate(self) -> None:
        with self._lock:
            self._loaded_at = None
            self._version = None

    def _refresh(self) -> None:
        now = self._clock()
        loaded = self._loaded_at
        if loaded is not None and now - loaded < self._every:
            return
        with self._lock:
            if self._loaded_at is not None and now - self._loaded_at < self._every:
                return
            stored = self._read_version()  # raises StorageError: fail closed
            if stored == self._version:
                self._loaded_at = now
                return
            tables: dict[tuple[int, int], dict[int, BlockedNetwork]] = {}
            for entry in _in_force(self._engine):  # expiry is checked again per request
                # Stored networks are normalised (parse_network): inet_pton is enough,
                # and far cheaper than ipaddress objects for a long list.
                text, _, length = entry.network.partition("/")
                ip_version = 6 if ":" in text else 4
                raw = socket.inet_pton(socket.AF_INET6 if ip_version == 6 else socket.AF_INET,
                                       text)
                prefix = int(length)
                key = int.from_bytes(raw, "big") >> (len(raw) * 8 - prefix)
                tables.setdefault((ip_version, prefix), {})[key] = entry
            self._tables = [(v, p, t) for (v, p), t in
                            sorted(tables.items(), key=lambda item: -item[0][1])]
            self._version, self._loaded_at = stored, now

    def _read_version(self) -> int:
        try:
            with reader(self._engine).connect() as conn:
                value = conn.execute(_VERSION).scalar()
        except sa_exc.DBAPIError as exc:
            raise storage_error(exc, _WHAT) from exc
        if value is None:
            raise StorageError("the IP block list version row is missing: run 'tsuba db "
                               "upgrade'")
        return int(value)
