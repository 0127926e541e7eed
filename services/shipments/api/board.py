"""The convoy board: a static page (services/shipments/board/, no build step) served at
`/board/`, the API URLs it calls (`/board/config.json`), and who a key is (`/board/whoami`).

The browser calls the three APIs itself with the key the user typed; registry and pledges let
it through CORS (`CORS_ORIGINS` names this API's origin), and every page is served with a
Content-Security-Policy that allows scripts and styles from here only and connections to the
three APIs only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import FileResponse, RedirectResponse

from services.shipments import responses as R
from shared import problems, route_docs
from shared.errors import NotFound
from shared.settings import Settings
from shared.web import Caller, Ctx

ASSETS = Path(__file__).resolve().parent.parent / "board"  # a data folder: no Python
BOARD_SERVICES = ("registry", "pledges", "shipments")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(html|js|css|svg|png|json)$")
_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
    # the message catalogues, i18n-<lang>.json
    "json": "application/json",
}

router = route_docs.Router(prefix="/board", tags=["board"])


def public_urls(settings: Settings, request: Request) -> dict[str, str | None]:
    """Where the browser reaches each API; shipments defaults to the origin it asked."""
    own = str(request.base_url).rstrip("/")
    urls: dict[str, str | None] = {
        s: (settings.public_urls.get(s) or "").rstrip("/") or None for s in BOARD_SERVICES
    }
    urls["shipments"] = urls["shipments"] or own
    return urls


def _headers(settings: Settings, request: Request) -> dict[str, str]:
    apis = " ".join(sorted({u for u in public_urls(settings, request).values() if u}))
    policy = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        f" connect-src 'self' {apis}; base-uri 'none'; form-action 'self';"
        " frame-ancestors 'none'; object-src 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        # the page holds no data: always revalidate, so a deploy is seen at the next load
        "Cache-Control": "no-cache",
    }


@router.get("", include_in_schema=False)
async def board_root() -> RedirectResponse:
    return RedirectResponse("/board/", status_code=308)


@router.get(
    "/config.json",
    responses=problems.documented(R.BoardConfig, public=True),
    operation_id="getBoardConfig",
)
async def board_config(request: Request, ctx: Ctx) -> dict[str, str | None]:
    """The APIs' browser-facing URLs (`PUBLIC_URLS`); no key needed."""
    return public_urls(ctx.settings, request)


@router.read("/whoami", R.WhoAmI, operation_id="getWhoAmI")
async def whoami(caller: Caller) -> dict[str, Any]:
    """The organisation and roles of the key sent: the board shows what they allow."""
    return {
        "key_id": caller.key_id,
        "organisation": caller.organisation,
        "roles": sorted(r.value for r in caller.roles),
    }


@router.get("/", include_in_schema=False)
async def board_page(request: Request, ctx: Ctx) -> FileResponse:
    return _asset("index.html", ctx.settings, request)


@router.get("/{name}", include_in_schema=False)
async def board_asset(name: str, request: Request, ctx: Ctx) -> FileResponse:
    return _asset(name, ctx.settings, request)


def _asset(name: str, settings: Settings, request: Request) -> FileResponse:
    """Raises NotFound for anything but a file of the board's own folder."""
    match = _NAME.match(name)
    path = ASSETS / name
    if match is None or not path.is_file():
        raise NotFound(f"the board has no file {name}")
    media_type = _TYPES[match.group(1)]
    return FileResponse(path, media_type=media_type, headers=_headers(settings, request))
