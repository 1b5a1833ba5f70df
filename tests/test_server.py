"""What `hypercare up` prints to sign in with, and the demo's use of the bootstrap token."""

from __future__ import annotations

from hypercare.api.state import AppState
from hypercare.auth import service as auth_service
from hypercare.auth.rules import Role
from hypercare.demo.run import demo_tokens
from hypercare.server import bootstrap_admin, sign_in_line


def test_one_sign_in_line_for_each_case() -> None:
    line = sign_in_line("127.0.0.1", 8700, "hc_abc", from_env=False)
    assert line.startswith("sign in at http://127.0.0.1:8700/ with hc_abc")
    assert "shown once" in line
    assert "HYPERCARE_ADMIN_TOKEN" in sign_in_line("127.0.0.1", 8700, None, from_env=True)
    existing = sign_in_line("127.0.0.1", 8700, None, from_env=False)
    assert "hypercare token list" in existing and "hc_" not in existing


async def test_the_demo_signs_in_with_the_bootstrap_token(state: AppState) -> None:
    """A fresh store: `up --demo` creates the bootstrap admin and the demo uses that token
    for its admin, so only one token is printed and it works."""
    token = await bootstrap_admin(state, None)
    assert token is not None
    tokens = await demo_tokens(state, token)
    assert tokens["admin"] == token
    assert set(tokens) == {"admin", "support", "responder"}
    async with state.sessions() as session, session.begin():
        names = {t.name for t in await auth_service.list_tokens(session=session)}
        who = await auth_service.authenticate(session=session, token=tokens["admin"])
    assert who.role is Role.admin and "demo-admin" not in names
    # an existing store (no new bootstrap token): the demo makes its own admin
    again = await demo_tokens(state, await bootstrap_admin(state, None))
    assert again["admin"] != token
