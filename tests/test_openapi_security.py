"""The OpenAPI document tells integrators which operations need an API key: every one except
health, readiness, the published contract (the AsyncAPI document and the event schemas) and the
board's static configuration, as an HTTP bearer scheme."""

from __future__ import annotations

import importlib

import pytest

CONTRACT = {"GET /asyncapi.json", "GET /schemas", "GET /schemas/{name}"}
PUBLIC = {
    "registry": {"GET /healthz", "GET /readyz", *CONTRACT},
    "pledges": {"GET /healthz", "GET /readyz", *CONTRACT},
    "shipments": {"GET /healthz", "GET /readyz", "GET /board/config.json", *CONTRACT},
}


@pytest.mark.parametrize("service", sorted(PUBLIC))
def test_every_operation_but_health_declares_the_bearer_key(service: str) -> None:
    app = importlib.import_module(f"services.{service}.app").create_app()
    document = app.openapi()
    scheme = document["components"]["securitySchemes"]["apiKey"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    operations = {
        f"{method.upper()} {path}": operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    public = {name for name, op in operations.items() if "security" not in op}
    assert public == PUBLIC[service]
    secured = [op for op in operations.values() if "security" in op]
    assert len(secured) >= 15
    assert all(op["security"] == [{"apiKey": []}] for op in secured)
    # the header is the scheme's, not a parameter of each operation
    assert not any(
        p["name"].lower() == "authorization"
        for op in operations.values()
        for p in op.get("parameters", [])
    )
