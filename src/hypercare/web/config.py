"""The `web:` section of the configuration file: console sessions and live updates."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from hypercare.configtypes import Duration, Networks, StrictModel


class WebConfig(StrictModel):
    session_ttl: Duration = Field(
        default=timedelta(hours=12), description="how long a console sign-in lasts"
    )
    # Peers (addresses/CIDRs) whose X-Forwarded-For / X-Forwarded-Proto the console believes:
    # the client address (widget rate limit) and the scheme (Secure cookies) come from them.
    # Empty: nobody's, not even loopback's.
    trusted_proxies: Networks = Field(default_factory=list)
    # auto: Secure when the request arrived over HTTPS (directly or via a trusted proxy)
    cookie_secure: Literal["auto", "always", "never"] = "auto"
    live_check_interval: Duration = Field(
        default=timedelta(seconds=2), description="how often the live stream looks for changes"
    )
    live_stream_max: Duration = Field(
        default=timedelta(seconds=25),
        description="a live stream ends after this long and the browser reconnects",
    )
    poll_interval: Duration = Field(
        default=timedelta(seconds=5), description="fragment polling when SSE is unavailable"
    )
    page_size: int = Field(default=50, ge=10, le=200, description="rows per triage page")
