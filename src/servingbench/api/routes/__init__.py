"""One router per resource: `/predict`, the V2 protocol, and service endpoints (health, stats)."""
