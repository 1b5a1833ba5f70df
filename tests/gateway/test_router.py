"""The router's indexed `{param}` lookup against the straightforward one (every route's regex
tried in configuration order) on random route tables and paths."""

from __future__ import annotations

import random
import re

from hypercare.gateway.router import Match, Router

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WORDS = ["api", "orders", "items", "v1", "users", "a", "b", "me", "x.json"]
_METHODS = ["GET", "POST", "DELETE"]


def _linear(routes: list[tuple[str, list[str] | None, str]], method: str, path: str) -> Match[str]:
    """Precedence as documented, by brute force: exact, then params in order, then prefixes."""

    def allows(methods: list[str] | None) -> bool:
        return methods is None or method in methods

    seen = False
    for template, methods, name in routes:
        if not template.endswith("/*") and "{" not in template and template == path:
            if allows(methods):
                return Match(name, template)
            seen = True
    for template, methods, name in routes:
        if "{" in template and not template.endswith("/*"):
            body = _PARAM.sub("[^/]+", re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))
            if re.fullmatch(body, path):
                if allows(methods):
                    return Match(name, template)
                seen = True
    if not seen:
        prefixes = sorted(
            (i for i, r in enumerate(routes) if r[0].endswith("/*")),
            key=lambda i: (-len(routes[i][0]), i),
        )
        for i in prefixes:
            template, methods, name = routes[i]
            prefix = template[:-1]
            if path.startswith(prefix) or path == prefix[:-1]:
                if allows(methods):
                    return Match(name, template)
                seen = True
                break
    return Match(None, "", method_not_allowed=seen)


def _segment(rng: random.Random, template: bool, at: int) -> str:
    roll = rng.random()
    if template and roll < 0.35:  # parameter names unique within a template
        return rng.choice(["{id%d}", "{name%d}.json", "v{n%d}"]) % at
    if not template and roll < 0.3:
        return rng.choice(["42", "abc", "v7", "r.json", "x.json"])
    return rng.choice(_WORDS)


def _path(rng: random.Random, template: bool) -> str:
    return "/" + "/".join(_segment(rng, template, i) for i in range(rng.randint(0, 4)))


def test_indexed_lookup_matches_linear_scan() -> None:
    rng = random.Random(18)
    for _ in range(200):
        routes: list[tuple[str, list[str] | None, str]] = []
        for i in range(rng.randint(1, 25)):
            template = _path(rng, True)
            if rng.random() < 0.1:
                template = template.rstrip("/") + "/*"
            methods = rng.choice([None, ["GET"], ["POST", "DELETE"]])
            routes.append((template, methods, f"r{i}"))
        router = Router.build(routes)
        for _ in range(50):
            path = _path(rng, rng.random() < 0.3)
            method = rng.choice(_METHODS)
            assert router.match(method, path) == _linear(routes, method, path), (
                routes,
                method,
                path,
            )


def test_method_excluded_by_first_match_falls_to_a_later_pattern() -> None:
    routes: list[tuple[str, list[str] | None, str]] = [
        ("/orders/{id}", ["GET"], "get"),
        ("/users/{id}", None, "users"),
        ("/{kind}/{id}", ["POST"], "post"),
        ("/{kind}/{id}", None, "any"),
    ]
    router = Router.build(routes)
    assert router.match("POST", "/orders/1") == Match("post", "/{kind}/{id}")
    assert router.match("PUT", "/orders/1") == Match("any", "/{kind}/{id}")
    assert router.match("GET", "/orders/1") == Match("get", "/orders/{id}")
    assert router.match("GET", "/orders/1/x") == Match(None, "", method_not_allowed=False)
