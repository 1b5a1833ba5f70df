"""HTTP for feedback intake: signals, integrations, dead letters, user and team feedback."""

from fastapi import APIRouter

from hypercare.feedback.views import signals, system, team, user

router = APIRouter()
for part in (signals, system, user, team):
    router.include_router(part.router)
public = user.public
