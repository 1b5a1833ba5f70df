"""The data plane: an HTTP/1.1 reverse proxy on uvloop + httptools that measures every call."""
