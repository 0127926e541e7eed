"""The closed lists the API accepts."""

from __future__ import annotations

from typing import Any

from services.pledges import domain
from services.pledges import responses as R
from shared import route_docs
from shared.web import Caller

router = route_docs.Router(prefix="/v1", tags=["reference"])


@router.read("/reference", R.Reference, operation_id="getReference")
async def reference(caller: Caller) -> dict[str, Any]:
    """The closed lists the API accepts: units, ISO 4217 currencies with their minor units,
    categories, what needs serve, priorities."""
    return {
        "units": [u.value for u in domain.quantities.Unit],
        "currencies": dict(sorted(domain.money.CURRENCIES.items())),
        "categories": [c.value for c in domain.Category],
        "serves": [s.value for s in domain.Serves],
        "priorities": [p.value for p in domain.Priority],
    }
