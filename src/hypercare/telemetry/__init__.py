"""Telemetry: ship, store and analyze every API call the gateway proxies."""

# hypercare.config imports this package's config section; loading it first keeps that
# cycle in one direction whichever module of this package is imported first
import hypercare.config  # noqa: F401
