"""Security events in the forms SIEMs read: OCSF (checked against its schema), CEF,
RFC 5424 syslog, Elastic ECS, Splunk HEC."""

from tsuba.soar.siem.formats import (
    cef,
    ecs,
    ecs_bulk,
    splunk_hec,
    syslog_5424,
)
from tsuba.soar.siem.ocsf_schema import InvalidOcsfEvent
from tsuba.soar.siem.ocsf_schema import validate as validate_ocsf

__all__ = ["InvalidOcsfEvent", "cef", "ecs", "ecs_bulk", "splunk_hec", "syslog_5424",
           "validate_ocsf"]
