"""The service's pages: public booking, manage, offer and pre-admission pages for
patients, and the agenda and review pages for staff.

Pages are thin: they render a template with what the first paint needs, and the page's
own script talks to the JSON routes of ``api.py``. Public pages carry no navigation
(a patient has no account); staff pages use the shared layout's.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hygie.web.pages import render


async def book_page(request: Request) -> Response:
    return render(request, "scheduling/book.html", {"public": True})


async def manage_page(request: Request) -> Response:
    return render(request, "scheduling/manage.html",
                  {"public": True, "secret": request.path_params["secret"]})


async def offer_page(request: Request) -> Response:
    return render(request, "scheduling/offer.html",
                  {"public": True, "secret": request.path_params["secret"]})


async def staff_page(request: Request) -> Response:
    return render(request, "scheduling/staff.html", {})


def routes() -> list[BaseRoute]:
    return [
        Route("/", staff_page),
        Route("/rdv", book_page),
        Route("/manage/{secret}", manage_page),
        Route("/offer/{secret}", offer_page),
    ]
