"""The data plane: an HTTP/1.1 reverse proxy on uvloop + httptools that measures every call."""

# hypercare.config embeds gateway.config's models and gateway.config builds on hypercare.config's
# base types; loading the root first makes either import order work.
import hypercare.config  # noqa: F401
