"""Seeing every pool: the metrics exporter, `phphost top` and `phphost logs`
(docs/monitoring.md)."""
