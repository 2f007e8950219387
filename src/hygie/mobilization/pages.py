"""The service's pages: plans and the launch form, the live board of a campaign, and
the staff directory.

Pages are thin: they render a template with what the first paint needs, and the page's
own script talks to the JSON routes of ``api.py`` (the board listens to its event
stream).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hygie.web.pages import render


async def index_page(request: Request) -> Response:
    return render(request, "mobilization/index.html", {})


async def board_page(request: Request) -> Response:
    return render(
        request, "mobilization/board.html", {"campaign_id": request.path_params["campaign_id"]}
    )


async def directory_page(request: Request) -> Response:
    return render(request, "mobilization/directory.html", {})


def routes() -> list[BaseRoute]:
    return [
        Route("/", index_page),
        Route("/campaigns/{campaign_id}", board_page),
        Route("/directory", directory_page),
    ]
