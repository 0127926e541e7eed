"""What the shipments API answers.

Documentation of what the routes answer (FastAPI puts them in the OpenAPI document; a generated
client parses answers into them). The routes build their answers as they did and are not
re-validated through these models on the way out: the write path answers with a JSONResponse
as it is. Amounts in minor units are integers; quantities, weights and rates are decimal strings
("6.5"); instants are RFC 3339 text.
"""

from services.shipments.responses.convoys import *  # noqa: F403
from services.shipments.responses.lines import *  # noqa: F403
from services.shipments.responses.writes import *  # noqa: F403
