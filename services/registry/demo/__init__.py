"""The registry's demo: organisations and partnerships from the four articles in the design
sources (organisations.py, partnerships.py), loaded over HTTP (scenario.py).

`python -m services.registry.demo --url http://127.0.0.1:8101 --key <registry_admin key>`.
"""

from services.registry.demo.organisations import ORGANISATIONS, Org
from services.registry.demo.partnerships import PARTNERSHIPS, Partnership, Step
from services.registry.demo.scenario import (
    LOCATED_REASON,
    Summary,
    idempotency_key,
    load,
    load_organisations,
    main,
)

__all__ = [
    "LOCATED_REASON",
    "ORGANISATIONS",
    "PARTNERSHIPS",
    "Org",
    "Partnership",
    "Step",
    "Summary",
    "idempotency_key",
    "load",
    "load_organisations",
    "main",
]
