"""Commands with named handlers: a route validates its input and builds a command; the one
handler registered for the command's type runs it inside a unit of work (shared/repository.py).

    HANDLERS = Handlers("pledges")

    @HANDLERS.register(MakePledge)
    async def make_pledge(command: MakePledge, uow: UnitOfWork) -> dict[str, Any]: ...

Authorization facts the route established (who acts for whom) travel in the command; a
handler never sees FastAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # pure at run time: a service's commands module imports no driver
    from shared.repository import UnitOfWork

__all__ = ["Command", "Handler", "Handlers"]


class Command:
    """Marker base of commands: frozen dataclasses, one per intent."""

    __slots__ = ()


C = TypeVar("C", bound=Command)
R = TypeVar("R")
Handler = Callable[[C, "UnitOfWork"], Awaitable[R]]


class Handlers:
    """A service's handlers, one per command type."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._handlers: dict[type[Command], Handler[Any, Any]] = {}

    def register(self, command_type: type[C]) -> Callable[[Handler[C, R]], Handler[C, R]]:
        """Decorator: the handler of `command_type` (TypeError if it already has one, or if
        it is not a Command)."""
        if not (isinstance(command_type, type) and issubclass(command_type, Command)):
            raise TypeError(f"{command_type!r} is not a Command")

        def add(handler: Handler[C, R]) -> Handler[C, R]:
            known = self._handlers.get(command_type)
            if known is not None:
                raise TypeError(
                    f"{self.service}: {command_type.__name__} is already handled by"
                    f" {getattr(known, '__qualname__', known)!s}"
                )
            self._handlers[command_type] = handler
            return handler

        return add

    async def handle(self, command: Command, uow: UnitOfWork) -> Any:
        """Run the handler of the command's type (exactly its type, not a base's); LookupError
        when none is registered."""
        handler = self._handlers.get(type(command))
        if handler is None:
            raise LookupError(f"{self.service}: no handler for {type(command).__name__}")
        return await handler(command, uow)

    def commands(self) -> list[type[Command]]:
        """The command types with a handler, in registration order."""
        return list(self._handlers)
