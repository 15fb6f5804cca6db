"""The HTTP server: health, readiness, metrics and the audit API; the inference gateway."""
