"""The demo's configuration: the shop's routes behind the gateway, as a user would write it."""

from __future__ import annotations

from hypercare.config import HypercareConfig, parse_config

DEMO_KEY = "demo-shop-web-key-0001"

ROUTES = """
    - name: catalog-search
      match: {path: /catalog/search, methods: [GET]}
      upstream: catalog
      auth: key
      rate_limit: {limit: 400, per: 1s, by: consumer}
      tags: {component: catalog, criticality: medium}
    - name: catalog-item
      match: {path: "/catalog/items/{id}", methods: [GET]}
      upstream: catalog
      auth: key
      tags: {component: catalog, criticality: medium}
    - name: order-create
      match: {path: /orders, methods: [POST]}
      upstream: orders
      auth: key
      retries: 0
      tags: {component: orders, criticality: high}
    - name: order-detail
      match: {path: "/orders/{id}", methods: [GET]}
      upstream: orders
      auth: key
      tags: {component: orders, criticality: medium}
    - name: payment-create
      match: {path: /payments, methods: [POST]}
      upstream: payments
      auth: key
      timeouts: {connect: 1s, response: 5s}
      tags: {component: payments, criticality: critical}
    - name: payment-status
      match: {path: /payment/status, methods: [GET]}
      upstream: payments
      auth: key
      timeouts: {connect: 1s, response: 5s}
      retries: 1
      tags: {component: payments, criticality: critical}
"""


def demo_yaml(ports: dict[str, int], extra: str = "") -> str:
    """The YAML a team would write for the demo shop (ports are the shop's free ports)."""
    upstreams = "".join(
        f"    {name}:\n"
        f"      targets: ['127.0.0.1:{port}']\n"
        "      health: {path: /healthz, interval: 2s, healthy: 2, unhealthy: 3}\n"
        for name, port in ports.items()
    )
    return (
        "gateway:\n"
        "  upstreams:\n"
        f"{upstreams}"
        "  routes:"
        f"{ROUTES}"
        "  consumers:\n"
        "    - name: shop-web\n"
        f"      keys: ['{DEMO_KEY}']\n"
        f"{extra}"
    )


def demo_config(ports: dict[str, int], extra: str = "") -> HypercareConfig:
    return parse_config(demo_yaml(ports, extra), "<demo>")
