"""Security monitoring and response: detections, alerts, incidents and their metrics."""
