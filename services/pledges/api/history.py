"""What the history routes of needs and pledges share: a page of a record's events, in version
order, for the callers its parties allow (each route says who they are and what they see)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends

from services.pledges import handlers, views
from services.pledges.requests import HISTORY_PAGE, After, HistoryLimit
from shared.deps import ServiceContext

if TYPE_CHECKING:
    from shared.repository import Repository

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Which page of the history: the versions after `after`, at most `limit` of them."""

    after: int
    limit: int

    async def of(
        self,
        ctx: ServiceContext,
        repository: Repository[S],
        record_id: str,
        allowed: Callable[[S], bool],
    ) -> dict[str, Any]:
        """The page, with `next_after` (null on the last), once `allowed` let the caller read
        the record as its first event made it (whose it is: the history shows even an event
        this code cannot read). `allowed` raises for a caller who may not read it, and says
        whether who signed for the goods is withheld from them (privacy.receiver_withheld)."""
        async with ctx.db.connection() as conn:
            withheld = allowed(await repository.opening(handlers.reading(conn), record_id))
            return await views.history(
                conn, repository, record_id, after=self.after, limit=self.limit, withheld=withheld
            )


async def _page(after: After = 0, limit: HistoryLimit = HISTORY_PAGE) -> HistoryPage:
    """The history page asked for (async: it blocks on nothing, so no worker thread)."""
    return HistoryPage(after, limit)


Page = Annotated[HistoryPage, Depends(_page)]
