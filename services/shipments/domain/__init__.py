"""The shipments service's pure rules: convoys from planning to proof of delivery.

No framework or driver imports; time comes in as an argument.
"""

from services.shipments.domain.delivery import *  # noqa: F403
from services.shipments.domain.errors import *  # noqa: F403
from services.shipments.domain.model import *  # noqa: F403
from services.shipments.domain.planning import *  # noqa: F403
from services.shipments.domain.road import *  # noqa: F403
from services.shipments.domain.values import *  # noqa: F403
