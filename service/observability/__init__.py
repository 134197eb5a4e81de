"""How the processes report on themselves: Prometheus metrics and structured logs."""
