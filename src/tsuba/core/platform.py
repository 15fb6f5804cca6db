"""Everything one process needs, opened from settings in one place.

The gateway, the CLI and later areas use ``Platform`` so that every security event takes
the same path: the tamper-evident audit log first (durable before the call returns), then
the bus that detections and SIEM exporters subscribe to.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from sqlalchemy import Engine

from tsuba.core.audit.log import AuditLog, Receipt
from tsuba.core.audit.signer import KeyManagerSigner
from tsuba.core.bus import Bus
from tsuba.core.config import Settings
from tsuba.core.events import SecurityEvent
from tsuba.core.home import require_home
from tsuba.core.keys import KeyManager
from tsuba.core.keys.factory import open_key_manager
from tsuba.core.storage import open_engine, upgrade
from tsuba.core.storage.migrate import require_current


@dataclass
class Platform:
    settings: Settings
    engine: Engine
    keys: KeyManager
    audit: AuditLog
    bus: Bus

    @classmethod
    def open(
        cls, settings: Settings, *, background: bool = False, migrate: bool = False
    ) -> Platform:
        """Open storage, keys, audit log and bus; ``background`` starts signing and delivery."""
        require_home(settings)
        engine = open_engine(settings.sqlalchemy_url)
        if migrate:
            upgrade(engine)
        else:
            require_current(engine)
        keys = open_key_manager(settings)
        signer = KeyManagerSigner(keys, settings.audit.signing_key)
        audit = AuditLog(
            engine,
            signer,
            trusted_public_keys=signer.all_public_keys_pem(),
            batch_max=settings.audit.batch_max,
            sth_interval_seconds=settings.audit.sth_interval_seconds if background else None,
        )
        bus = Bus(engine)
        if background:
            bus.start()
        return cls(settings=settings, engine=engine, keys=keys, audit=audit, bus=bus)

    def record(self, event: SecurityEvent) -> Receipt:
        """Append ``event`` to the audit log (durable), then publish it to subscribers."""
        receipt = self.audit.append(event)
        self.bus.publish(event)
        return receipt

    def close(self) -> None:
        self.bus.stop()
        self.audit.close()
        self.engine.dispose()

    def __enter__(self) -> Platform:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
