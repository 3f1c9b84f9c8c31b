"""A fault-injecting HTTP proxy of the project's own, on 127.0.0.1, between promptless and a real llama.cpp server.

``FaultProxy(upstream).start()``; set ``proxy.fault`` to one of ``FAULTS`` at any time. Every request is
counted (``proxy.requests``), so a test can bound how many calls a failing run made.
"""

from __future__ import annotations

import http.server
import threading
import time
from typing import ClassVar

import httpx

FAULTS = ("none", "hang", "unauthorized", "corrupt_every_3rd", "format_refused")


class FaultProxy:
    def __init__(self, upstream: str, hang_s: float = 30.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.fault = "none"
        self.fail_after: int | None = None  # answer 401 to every request after this many
        self.hang_s = hang_s
        self.requests = 0
        self.lock = threading.Lock()
        self.released = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            headers_seen: ClassVar[list[dict[str, str]]] = []

            def log_message(self, *args: object) -> None:  # quiet
                return

            def do_GET(self) -> None:
                self._answer(*proxy.forward("GET", self.path, b""))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy.lock:
                    proxy.requests += 1
                    number = proxy.requests
                fault = proxy.fault
                if proxy.fail_after is not None and number > proxy.fail_after:
                    fault = "unauthorized"
                if fault == "hang":
                    proxy.released.wait(proxy.hang_s)
                    return self._answer(504, b"gateway gave up")
                if fault == "unauthorized":
                    return self._answer(401, b'{"error": {"message": "invalid api key"}}')
                if fault == "format_refused":
                    return self._answer(500, b'{"error": {"message": "response_format: type json_schema unknown"}}')
                status, data = proxy.forward("POST", self.path, body)
                if fault == "corrupt_every_3rd" and number % 3 == 0:
                    status, data = 200, b"<html>upstream hiccup</html>"
                self._answer(status, data)

            def _answer(self, status: int, data: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting: expected
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.client = httpx.Client(timeout=120)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def forward(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        reply = self.client.request(method, self.upstream.removesuffix("/v1") + path, content=body,
                                    headers={"Content-Type": "application/json"})
        return reply.status_code, reply.content

    def start(self) -> FaultProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.released.set()
        time.sleep(0.05)
        self.server.shutdown()
        self.server.server_close()
        self.client.close()
