"""The registry's pure rules: organisations and partnerships. No framework or driver imports."""

from services.registry.domain.names import *  # noqa: F403
from services.registry.domain.organisations import *  # noqa: F403
from services.registry.domain.partnerships import *  # noqa: F403
