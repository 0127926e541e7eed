"""What the shipments API answers: documentation, not re-validated on the way out (how these
models are used and how they write amounts, quantities and instants: shared/responses.py)."""

from services.shipments.responses.convoys import *  # noqa: F403
from services.shipments.responses.lines import *  # noqa: F403
from services.shipments.responses.writes import *  # noqa: F403
