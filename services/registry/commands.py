"""What callers ask the registry to do: one frozen dataclass per intent, built by the routes
after validation and authorisation, run by the handler registered for its type (handlers/)."""
