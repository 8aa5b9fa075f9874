"""Serve a built site on 127.0.0.1 only (never on other interfaces): a convenience, the site needs no server."""
from __future__ import annotations

import functools
import http.server
from pathlib import Path

HOST = "127.0.0.1"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


def make_server(folder: str | Path, port: int = 8000) -> http.server.ThreadingHTTPServer:
    """A server of `folder` on 127.0.0.1:`port` (0: any free port; read `server.server_address`)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    return http.server.ThreadingHTTPServer((HOST, port), handler)


def serve(folder: str | Path, port: int = 8000) -> None:
    """Serve `folder` until Ctrl-C."""
    server = make_server(folder, port)
    host, bound = server.server_address[:2]
    print(f"serving {folder} on http://{host}:{bound}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
