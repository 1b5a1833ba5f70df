"""The web console: server-rendered pages (Jinja2 + htmx) over the same services as the API."""

# hypercare.config imports this package's settings module part-way through; loading it first
# keeps that order whichever module is imported first.
import hypercare.config  # noqa: F401
