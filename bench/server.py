"""Start `python -m llama_cpp.server` on 127.0.0.1 for one GGUF, the way both frameworks will reach it.

    with llama_server(path, alias="smollm2", threads=2) as api_base: ...
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def llama_server(model: Path, alias: str, threads: int, n_ctx: int = 4096) -> Iterator[str]:
    """Yield the server's ``/v1`` base URL; stop the server on exit (its log goes to a temp file)."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix=f"llama-server-{alias}-", suffix=".log", delete=False)  # noqa: SIM115
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", alias,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
        "--n_threads", str(threads), "--n_threads_batch", str(threads),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with {process.returncode}; log: {log.name}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama.cpp server not healthy after 120 s; log: {log.name}")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
