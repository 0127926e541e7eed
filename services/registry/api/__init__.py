"""The registry's routes, one module per resource: organisations (with the network around
one), partnerships, and organisations' API keys. HTTP <-> commands, handlers and queries; no SQL,
no rules; who may call what is auth.py's."""

from services.registry.api import api_keys, organisations, partnerships

ROUTERS = (organisations.router, partnerships.router, api_keys.router)
