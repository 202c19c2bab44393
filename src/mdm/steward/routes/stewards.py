"""Steward accounts (administrators only): the list, and a new account whose
generated password is shown once."""

from __future__ import annotations

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, Response

from mdm.services import accounts
from mdm.steward.deps import AdminForm, AdminPage

router = APIRouter()


@router.get("/stewards", response_class=HTMLResponse)
def stewards_page(page: AdminPage) -> Response:
    with page.open() as c:
        return c.render("stewards.html", stewards=accounts.list_stewards(c.db), created=None)


@router.post("/stewards", response_class=HTMLResponse)
def create_steward(
    page: AdminForm,
    username: str = Form(...),
    display_name: str = Form(""),
    role: str = Form("reviewer"),
) -> Response:
    with page.open() as c:
        password = accounts.generate_password()
        accounts.create_steward(
            c.db,
            username,
            role,
            password,
            display_name=display_name or None,
            actor=c.user.steward.actor,
        )
        return c.render(
            "stewards.html", stewards=accounts.list_stewards(c.db), created=(username, password)
        )
