"""A process that still holds embedded models at exit ends quietly.

llama-cpp-python frees a model in ``__del__``; at interpreter shutdown that may run after its
library's functions were cleared (a long process that loaded many models and LoRA adapters printed
``TypeError: 'NoneType' object is not callable`` from ``free_model``). promptless closes the models
it loaded in an exit hook. The script below makes the shutdown order certain: an exit hook
registered before any model is loaded (so it runs after promptless') clears those functions, as
module teardown would.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.integration

SCRIPT = """
import atexit
import llama_cpp.llama_cpp as native
import promptless as pl
from promptless.types import Request

def teardown():
    native.llama_model_free = native.llama_free = native.llama_adapter_lora_free = None
atexit.register(teardown)
kept = [pl.LM(name, cache=False) for name in ("local/gemma-3-270m", "local/smollm2-135m")]
for lm in kept:
    lm(Request(prompt="Hello", max_tokens=2))
print("ok")
"""


def test_models_alive_at_exit_are_closed_before_the_library_goes():
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert "NoneType" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
