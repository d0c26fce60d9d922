"""What Mend's processes tell operators about themselves: Prometheus metrics (metrics.py,
queue_gauges.py, exposition.py) and OpenTelemetry traces (tracing.py)."""
