"""Console request dependencies: who is signed in, CSRF checks, role checks, error pages.

Pages and actions never see an API error as JSON: `ConsoleUser` turns a domain error raised
by a service into a `PageError`, which `hypercare.web.app` renders as a page (or as a
message fragment for htmx requests) with the same status code the API would use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from hypercare.api.deps import Db
from hypercare.auth.models import Principal
from hypercare.auth.rules import Role, allows
from hypercare.errors import DomainError, HypercareError
from hypercare.web import rules, sessions


class PageError(HypercareError):
    """A console request that cannot be served; rendered as HTML with `status`."""

    code = "page_error"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class SignInRequired(HypercareError):
    """No valid console session: the browser is sent to the sign-in page."""

    code = "sign_in_required"

    def __init__(self, next_path: str) -> None:
        super().__init__("sign in to use the console")
        self.next_path = next_path


@dataclass(frozen=True, slots=True)
class SignedIn:
    principal: Principal
    sid: str
    csrf: str

    def require(self, role: Role, doing: str) -> None:
        """The same role rule as the API: refuse with 403 whatever the page showed."""
        if not allows(self.principal.role, role):
            raise PageError(
                403,
                f"{doing} needs the {role.value!r} role or higher; "
                f"you are signed in as {self.principal.role.value!r}",
            )


async def signed_in(request: Request, session: Db) -> AsyncIterator[SignedIn]:
    sid = request.cookies.get(rules.SESSION_COOKIE, "")
    principal = await sessions.principal_for(session=session, sid=sid) if sid else None
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    try:
        yield SignedIn(principal=principal, sid=sid, csrf=rules.csrf_token(sid))
    except DomainError as exc:
        raise PageError(exc.status, exc.message) from exc


ConsoleUser = Annotated[SignedIn, Depends(signed_in, scope="function")]


async def csrf_checked(request: Request, user: ConsoleUser) -> SignedIn:
    """Every state-changing console request carries the session's CSRF token, in the
    X-CSRF-Token header (htmx) or the `csrf` form field (plain forms)."""
    sent = request.headers.get(rules.CSRF_HEADER)
    if not sent:
        form = await request.form()
        value = form.get(rules.CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not rules.same(sent, user.csrf):
        raise PageError(
            403,
            "the form's security token is missing or out of date; reload the page and try again",
        )
    return user


CsrfUser = Annotated[SignedIn, Depends(csrf_checked)]


async def form_text(request: Request, name: str, *, max_length: int) -> str | None:
    """One text field of the posted form, stripped; None when absent or empty."""
    value = (await request.form()).get(name)
    if not isinstance(value, str):
        return None
    value = value.strip()
    if len(value) > max_length:
        raise PageError(
            422, f"{name.replace('_', ' ')} is too long (at most {max_length} characters)"
        )
    return value or None
