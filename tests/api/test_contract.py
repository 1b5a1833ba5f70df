"""The OpenAPI document declares what the API really does: bearer security, the error
answers with their shared body; 405 answers name every allowed method; the docs page is
served from the product's own files."""

from __future__ import annotations

import re

import httpx

from hypercare.api.docs import SWAGGER_UI
from hypercare.auth.rules import Role
from tests.conftest import auth

ERROR_REF = "#/components/schemas/ErrorBody"


async def _doc(client: httpx.AsyncClient) -> dict[str, object]:
    r = await client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    doc: dict[str, object] = r.json()
    return doc


async def test_every_api_operation_declares_bearer_security_and_its_errors(
    client: httpx.AsyncClient,
) -> None:
    doc = await _doc(client)
    components = doc["components"]
    assert isinstance(components, dict)
    assert components["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": components["securitySchemes"]["bearer"]["description"],
    }
    assert "HTTPValidationError" not in components["schemas"]
    error = components["schemas"]["ErrorBody"]
    assert error["required"] == ["error"]
    paths = doc["paths"]
    assert isinstance(paths, dict)
    operations = 0
    for path, item in paths.items():
        for method, op in item.items():
            responses = op["responses"]
            for status in ("422", *(("401", "403", "404") if path.startswith("/api/v1") else ())):
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, (method, path, status)
            if path.startswith("/api/v1"):
                operations += 1
                assert {"bearer": []} in op["security"], (method, path)
            if method in ("post", "patch") and path.startswith("/api/v1"):
                assert {"409", "413"} <= set(responses), (method, path)
            else:
                assert "security" not in op or path.startswith("/api/v1")
    assert operations > 40
    widget = paths["/api/v1/feedback"]["post"]
    assert {"widgetKey": []} in widget["security"] and "429" in widget["responses"]
    assert "503" in paths["/readyz"]["get"]["responses"]


async def test_405_names_every_allowed_method(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    r = await client.put("/api/v1/issues/1", json={}, headers=auth(tokens[Role.admin]))
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, PATCH"
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert "GET, PATCH" in r.json()["error"]["message"]
    r = await client.delete("/api/v1/issues")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"


async def test_docs_page_uses_own_assets_and_no_inline_script(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/docs")
    assert r.status_code == 200
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "script-src 'self'" in r.headers["content-security-policy"]
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", r.text, re.S)
    assert scripts and all('src="/static/' in attrs and not body for attrs, body in scripts)
    assert "http://" not in r.text and "https://" not in r.text
    for asset in (
        f"/static/vendor/swagger-ui-bundle-{SWAGGER_UI}.js",
        f"/static/vendor/swagger-ui-{SWAGGER_UI}.css",
        "/static/api-docs.js",
        "/static/vendor/swagger-ui.LICENSE.txt",
    ):
        assert (await client.get(asset)).status_code == 200, asset
