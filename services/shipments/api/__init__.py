"""The shipments API's routes, one module per resource: convoys (writes), tracking (reads of
convoys and their exports), pledge lines, the live updates stream, the convoy board."""

from fastapi import APIRouter

from services.shipments.api import board, convoys, pledge_lines, tracking, updates

ROUTERS: list[APIRouter] = [
    convoys.router,
    tracking.router,
    pledge_lines.router,
    updates.router,
    board.router,
]
