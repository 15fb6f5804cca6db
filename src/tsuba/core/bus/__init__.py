"""The security event bus: publish SecurityEvents to a durable outbox, deliver them to named
subscribers at-least-once and in order, and keep what a subscriber could not handle.

    bus = Bus(engine).start()
    bus.subscribe("detections", handle, classes=["authentication"], min_severity="medium")
    bus.publish(event)

The store (:class:`OutboxStore`) is separate from the dispatcher (:class:`Bus`), so a
Redis Streams store can replace the SQL outbox without touching subscribers.
"""

from tsuba.core.bus.dispatcher import Bus, Delivery, Handler, decode
from tsuba.core.bus.notices import dead_letter_notice, is_notice, stall_notice
from tsuba.core.bus.sql_store import SqlOutbox, publish_in
from tsuba.core.bus.store import DeadLetter, OutboxRecord, OutboxStore, Start

__all__ = [
    "Bus",
    "DeadLetter",
    "Delivery",
    "Handler",
    "OutboxRecord",
    "OutboxStore",
    "SqlOutbox",
    "Start",
    "dead_letter_notice",
    "decode",
    "is_notice",
    "publish_in",
    "stall_notice",
]
