"""Security events in the forms SIEMs read: CEF, RFC 5424 syslog, Elastic ECS, Splunk HEC."""

from tsuba.soar.siem.formats import (
    cef,
    ecs,
    ecs_bulk,
    splunk_hec,
    syslog_5424,
)

__all__ = ["cef", "ecs", "ecs_bulk", "splunk_hec", "syslog_5424"]
