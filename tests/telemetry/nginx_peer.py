"""Debian's nginx as a test peer: JSON access logs in front of a loopback test upstream.

Nothing listens on a TCP port: nginx listens on a unix socket (nginx cannot bind port 0 and
report it) and proxies to an upstream on another unix socket, so there is no port race.

    with Upstream(tmp / "up.sock") as upstream, Nginx(tmp, upstream.path) as nginx:
        nginx.get("/orders/1")             # -> (status, request id from nginx)
        upstream.failing = True             # the upstream answers 500 from now on
        nginx.access_log                    # the JSON lines nginx wrote
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import socketserver
import subprocess
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType

from hypercare.telemetry.accesslog.nginx import LOG_FORMAT
from tests.support import wait_until

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        code = 500 if self.server.failing else 200
        body = b'{"ok": %s}' % (b"false" if code == 500 else b"true")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    failing = False


class Upstream:
    """A tiny HTTP service on a unix socket; `failing` makes it answer 500."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._server = _Server(str(path), _Handler)
        os.chmod(path, 0o777)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def failing(self) -> bool:
        return self._server.failing

    @failing.setter
    def failing(self, value: bool) -> None:
        self._server.failing = value

    def __enter__(self) -> Upstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self._path)
        self.sock = s


class Nginx:
    """nginx as a child process, serving on `dir/nginx.sock`, logging to `dir/access.log`."""

    def __init__(self, root: Path, upstream: Path, *, host: str = "shop.example.com") -> None:
        if NGINX is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx)")
        self.root = root
        self.sock = root / "nginx.sock"
        self.access_log = root / "access.log"
        self.host = host
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp = root / "temp"
        temp.mkdir(exist_ok=True)
        conf = root / "nginx.conf"
        conf.write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {root / 'nginx.pid'};\n"
            f"error_log {root / 'error.log'} warn;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            f"  {LOG_FORMAT}\n"
            f"  access_log {self.access_log} hypercare;\n"
            f"  client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy;\n"
            f"  fastcgi_temp_path {temp}/fcgi; uwsgi_temp_path {temp}/uwsgi;\n"
            f"  scgi_temp_path {temp}/scgi;\n"
            f"  upstream app {{ server unix:{upstream}; }}\n"
            "  server {\n"
            f"    listen unix:{self.sock};\n"
            "    location / {\n"
            "      proxy_pass http://app;\n"
            "      proxy_set_header X-Request-Id $request_id;\n"
            "      add_header X-Request-Id $request_id always;\n"
            "    }\n"
            "  }\n"
            "}\n"
        )
        self._conf = conf
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        assert NGINX is not None
        self.proc = subprocess.Popen(
            [
                NGINX,
                "-p",
                str(self.root),
                "-c",
                str(self._conf),
                "-e",
                str(self.root / "error.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: self.sock.exists() or self.proc_died(), 30, "nginx to listen")
        if self.proc_died():
            raise RuntimeError(f"nginx did not start: {self.errors()}")
        return self

    def proc_died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def errors(self) -> str:
        log = self.root / "error.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        """GET `path` through nginx: (status, the request id nginx gave the request)."""
        conn = _UnixConnection(str(self.sock))
        try:
            conn.request("GET", path, headers={"Host": self.host, **(headers or {})})
            r = conn.getresponse()
            r.read()
            return r.status, r.getheader("X-Request-Id") or ""
        finally:
            conn.close()

    def reopen(self) -> None:
        """What logrotate's postrotate does: nginx reopens its log files (SIGUSR1)."""
        assert self.proc is not None
        self.proc.send_signal(10)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(3)  # SIGQUIT: graceful stop
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
