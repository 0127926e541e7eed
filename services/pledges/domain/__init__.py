"""The pledges service's pure rules: needs, pledges, fulfilment and coverage. No framework or
driver imports."""

from services.pledges.domain import money as money
from services.pledges.domain import quantities as quantities
from services.pledges.domain.coverage import *  # noqa: F403
from services.pledges.domain.fulfilment import *  # noqa: F403
from services.pledges.domain.history import *  # noqa: F403
from services.pledges.domain.lines import *  # noqa: F403
from services.pledges.domain.making import *  # noqa: F403
from services.pledges.domain.needs import *  # noqa: F403
from services.pledges.domain.pledges import *  # noqa: F403
from services.pledges.domain.state import *  # noqa: F403
from services.pledges.domain.vocabulary import *  # noqa: F403
