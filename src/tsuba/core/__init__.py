"""Shared foundations: configuration, storage, events, audit, keys, identity, errors."""
