"""A real HTTP server on loopback that publishes an issuer's discovery document and JWKS."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Issuer:
    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.hits: dict[str, int] = {}
        self.status = 200
        self.url = ""

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}/jwks"


@contextmanager
def serve_issuer() -> Iterator[Issuer]:
    issuer = Issuer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer.hits[self.path] = issuer.hits.get(self.path, 0) + 1
            if self.path == "/.well-known/openid-configuration":
                body: Any = {"issuer": issuer.url, "jwks_uri": issuer.jwks_uri}
            elif self.path == "/jwks":
                body = {"keys": issuer.keys}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(issuer.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
