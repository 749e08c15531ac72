"""The web form at ``/``: one self-contained page, no assets from the internet."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def read_form() -> HTMLResponse:
    """Return the application form."""
    page = resources.files("loanops.server").joinpath("static/index.html").read_text()
    return HTMLResponse(page)
