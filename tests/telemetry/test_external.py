import pytest

from hypercare.config import parse_config
from hypercare.errors import ConfigError
from hypercare.telemetry.external import (
    CATCH_ALL,
    ExternalRouteConfig,
    ExternalRoutes,
    TemplateCounter,
    normalize_path,
    suggested_config,
)


def _routes(*items: dict[str, object]) -> ExternalRoutes:
    return ExternalRoutes.from_config([ExternalRouteConfig.model_validate(i) for i in items])


def test_declared_routes_match_like_gateway_routes() -> None:
    routes = _routes(
        {"name": "orders.get", "match": {"path": "/orders/{id}", "methods": ["get"]}},
        {"name": "orders.list", "match": {"path": "/orders"}},
        {"name": "api", "match": {"path": "/api/*"}},
    )
    assert routes.match("", "GET", "/orders/42?x=1") == ("orders.get", "/orders/{id}")
    assert routes.match("shop:8080", "GET", "/orders") == ("orders.list", "/orders")
    assert routes.match("", "POST", "/api/v1/x") == ("api", "/api/*")
    # a method the route excludes falls to the catch-all, keeping a template
    assert routes.match("", "DELETE", "/orders/42") == (CATCH_ALL, "/orders/{id}")
    # an OTLP http.route given as the path matches its declared template
    assert routes.match("", "GET", "/orders/{id}") == ("orders.get", "/orders/{id}")


def test_host_routes_win_over_hostless_ones() -> None:
    routes = _routes(
        {"name": "any", "match": {"path": "/x"}},
        {"name": "shop", "match": {"path": "/x", "host": "Shop.Example.com"}},
        {"name": "wild", "match": {"path": "/x", "host": "*.example.com"}},
    )
    assert routes.match("shop.example.com:443", "GET", "/x") == ("shop", "/x")
    assert routes.match("eu.example.com", "GET", "/x") == ("wild", "/x")
    assert routes.match("other.org", "GET", "/x") == ("any", "/x")
    assert routes.match("", "GET", "/x") == ("any", "/x")


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/orders/1234", "/orders/{id}"),
        ("/u/9f1c2e3a-0b1c-4d5e-8f90-1a2b3c4d5e6f/x", "/u/{id}/x"),
        ("/blob/deadbeef0123abcd", "/blob/{id}"),
        ("/users/me", "/users/me"),
        ("/users/a@b.c", "/users/{id}"),
        ("", "/"),
        ("no-slash/1", "/no-slash/{id}"),
        ("/" + "a/" * 40, "/" + "a/" * 31 + "*"),
    ],
)
def test_normalize_path(path: str, template: str) -> None:
    assert normalize_path(path) == template


def test_template_counter_suggests_most_frequent() -> None:
    c = TemplateCounter(capacity=4)
    for _ in range(3):
        c.add("GET", "/a/{id}")
    c.add("POST", "/b")
    for i in range(10):
        c.add("GET", f"/rare{i}")
    top = c.suggestions(2)
    assert top[0].path_template == "/a/{id}" and top[0].calls == 3
    assert len(c.counts) <= 4
    assert suggested_config(top[0]) == {
        "name": "a.get",
        "match": {"path": "/a/{id}", "methods": ["GET"]},
        "tags": {},
    }


def test_config_section() -> None:
    cfg = parse_config(
        """
external_routes:
  - name: orders.get
    match:
      path: /orders/{id}
      methods: [GET]
      host: shop.example.com
    tags: {component: orders}
detection:
  routes:
    orders.get: {}
"""
    )
    assert cfg.external_routes[0].match.host == "shop.example.com"
    assert "orders.get" in cfg.route_names()
    assert cfg.route_tags()["orders.get"] == {"component": "orders"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "external_routes:\n  - {name: a, match: {path: /a}}\n"
            "  - {name: a, match: {path: /b}}\n",
            "used twice",
        ),
        ("external_routes:\n  - {name: a, match: {path: /a}, upstream: x}\n", "upstream"),
        ("external_routes:\n  - {name: a, match: {path: /a, host: 'http://x'}}\n", "host"),
        ("external_routes:\n  - {name: _unmatched, match: {path: /a}}\n", "name"),
    ],
)
def test_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


def test_flow_style_paths_with_params_need_no_quotes() -> None:
    cfg = parse_config(
        "external_routes:\n"
        "  - name: orders.get\n"
        "    match: {path: /orders/{id}, methods: [GET]}\n"
        "    tags: {component: orders}\n"
        "  - {name: items, match: {path: /o/{a}/i/{b}}}\n"
    )
    assert [(r.name, r.match.path) for r in cfg.external_routes] == [
        ("orders.get", "/orders/{id}"),
        ("items", "/o/{a}/i/{b}"),
    ]
    # other YAML errors still name their line
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("external_routes:\n  - name: a\n    match: {path: /a/{id}, [\n")
