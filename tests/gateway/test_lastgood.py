"""The last good gateway configuration on disk, and workers restarted from it."""

from __future__ import annotations

import os
import stat

import httpx
import pytest

from hypercare.config import parse_config
from hypercare.errors import ConfigError
from hypercare.gateway import lastgood
from hypercare.gateway.supervisor import start_workers

KEYED = """
gateway:
  upstreams: {u: {targets: ["127.0.0.1:9"]}}
  consumers: [{name: shop, keys: ["${HC_TEST_SHOP_KEY}"]}]
  routes: [{name: all, match: {path: /*}, upstream: u, auth: key}]
"""


def _route_to(address: str) -> str:
    return f"""
gateway:
  upstreams: {{u: {{targets: ["{address}"]}}}}
  routes: [{{name: all, match: {{path: /*}}, upstream: u}}]
"""


def test_kept_as_source_with_env_references_and_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("HC_TEST_SHOP_KEY", "secret-shop-key-1")
    assert lastgood.load(tmp_path) is None
    path = lastgood.save(tmp_path / "gateway", KEYED)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "secret-shop-key-1" not in path.read_text()  # the reference, not the secret
    config = lastgood.load(tmp_path / "gateway")
    assert config is not None
    assert config.gateway.consumers[0].keys == ["secret-shop-key-1"]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_unusable_file_is_a_config_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.delenv("HC_TEST_SHOP_KEY", raising=False)
    path = lastgood.save(tmp_path, KEYED)
    with pytest.raises(ConfigError, match=f"{path}:.*HC_TEST_SHOP_KEY"):
        lastgood.load(tmp_path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        lastgood.load(tmp_path)
    path.write_bytes(b"#" * (lastgood.MAX_BYTES + 1))
    with pytest.raises(ConfigError, match="bytes"):
        lastgood.load(tmp_path)


def test_a_dead_worker_restarts_from_the_kept_config(tmp_path, upstream, upstream_b):
    text = _route_to(upstream.address)
    group = start_workers(
        parse_config(text), "127.0.0.1:0", workers=1, config_text=text, config_dir=tmp_path
    )
    url = f"http://127.0.0.1:{group.port}/x"
    try:
        assert lastgood.path_in(tmp_path).read_text() == text
        assert httpx.get(url).json()["upstream"] == "a"
        with pytest.raises(RuntimeError, match="still running"):
            group.restart(0)
        # what is on disk wins over the memory of the process that restarts the worker
        lastgood.save(tmp_path, _route_to(upstream_b.address))
        group.processes[0].kill()
        group.processes[0].join(10)
        group.restart(0)
        assert group.alive()
        assert httpx.get(url).json()["upstream"] == "b"
        # reload keeps the new configuration once the new workers run it
        group.reload(parse_config(text), text)
        assert lastgood.path_in(tmp_path).read_text() == text
    finally:
        group.stop(timeout=2)
