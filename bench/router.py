"""Route lookup benchmark: `ExternalRoutes.match` (the gateway `Router` underneath) against
the straightforward lookup, every `{param}` pattern's regex tried in order, in the same run.

    .venv/bin/python bench/router.py [--routes 20 50] [--calls 50000] [--runs 7]

Routes are ``/api/rN/items/{id}`` (GET), as in bench/tail.py; every call's path is distinct
and matches one of them, spread evenly. Both lookups must give the same answers (checked).
Medians of --runs runs; CPU is this process's time.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

from hypercare.telemetry.external import CATCH_ALL, ExternalRouteConfig, ExternalRoutes


def linear(templates: list[str]) -> list[tuple[re.Pattern[str], str, str]]:
    out = []
    for i, t in enumerate(templates):
        body = re.escape(t).replace(r"\{", "{").replace(r"\}", "}")
        out.append(
            (re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", body) + "$"), f"r{i}", t)
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routes", type=int, nargs="+", default=[20, 50])
    ap.add_argument("--calls", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    for n in args.routes:
        templates = [f"/api/r{i}/items/{{id}}" for i in range(n)]
        routes = ExternalRoutes(
            [
                ExternalRouteConfig.model_validate(
                    {"name": f"r{i}", "match": {"path": t, "methods": ["GET"]}}
                )
                for i, t in enumerate(templates)
            ]
        )
        patterns = linear(templates)

        def reference(
            host: str,
            method: str,
            path: str,
            patterns: list[tuple[re.Pattern[str], str, str]] = patterns,
        ) -> tuple[str, str]:
            path = path.split("?", 1)[0]
            for regex, name, template in patterns:
                if regex.match(path) and method == "GET":
                    return name, template
            return CATCH_ALL, path

        paths = [f"/api/r{i % n}/items/{i}?page=2" for i in range(args.calls)]
        host = "shop.example.com"
        assert all(routes.match(host, "GET", p) == reference(host, "GET", p) for p in paths)
        ref, cand = [], []
        for _ in range(args.runs):
            for out, match in ((ref, reference), (cand, routes.match)):
                cpu = time.process_time()
                for p in paths:
                    match(host, "GET", p)
                out.append((time.process_time() - cpu) / len(paths) * 1e6)
        r, c = statistics.median(ref), statistics.median(cand)
        print(
            f"{n} routes: linear scan {r:.2f} µs CPU/call, ExternalRoutes.match {c:.2f} µs "
            f"({r / c:.1f}x faster)"
        )


if __name__ == "__main__":
    main()
