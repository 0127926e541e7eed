"""Service-specific export formats of the registry: none yet (its lists are JSON, paged; the
organisation directory reaches the other services through its events)."""
