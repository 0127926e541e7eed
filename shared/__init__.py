"""twinaid's shared infrastructure: event log, relay, consumers, web edge. Imports no service."""
