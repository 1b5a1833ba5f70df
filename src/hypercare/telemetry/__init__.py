"""Telemetry: ship, store and analyze every API call the gateway proxies."""
