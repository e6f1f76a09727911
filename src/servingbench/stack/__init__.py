"""Running servers as local processes: start detached, pin to cores, wait for readiness, stop."""
