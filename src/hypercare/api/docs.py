"""The browsable API reference at /api/v1/docs, served offline.

Swagger UI comes from the product's own static files (vendored from npm into
`web/static/vendor/`, like htmx and uPlot) and starts from a script file, so the page works
without internet access and under the console's `default-src 'self'` policy: no CDN, no
inline script.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from hypercare.web.console import SECURITY_HEADERS

SWAGGER_UI = "5.36.0"
DOCS_PATH = "/api/v1/docs"

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Hypercare API</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/static/vendor/swagger-ui-{SWAGGER_UI}.css">
  <script src="/static/vendor/swagger-ui-bundle-{SWAGGER_UI}.js" defer></script>
  <script src="/static/api-docs.js" defer></script>
</head>
<body>
  <div id="swagger-ui" data-spec="/api/v1/openapi.json"></div>
  <noscript>The API reference needs JavaScript; the raw document is at
    <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</noscript>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


@router.get(DOCS_PATH, response_class=HTMLResponse)
async def api_docs() -> HTMLResponse:
    return HTMLResponse(_PAGE, headers=SECURITY_HEADERS)
