"""What callers ask the pledges service to do: one frozen dataclass per intent, built by the
routes (api/) and the subscriptions after validation and authorization, run by its handler
(handlers.py)."""
