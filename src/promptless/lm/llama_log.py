"""llama.cpp's own log lines go to Python logging, never straight to the terminal.

llama.cpp writes its log (``llama_kv_cache_iswa: using full-size SWA cache ...``, model
loading, warnings) through one process-wide callback. llama-cpp-python's default one prints
to stderr whatever its logger lets through, and some lines get past ``verbose=False``.
``silence()`` installs a callback once per process that hands every line to the
``promptless.lm.llama_cpp`` logger instead: at INFO for llama.cpp's warnings and errors,
at DEBUG for its info and debug lines (over a thousand per model load). Nothing is shown
unless logging is configured to show it (``promptless -v``, or
``logging.basicConfig(level=logging.INFO)`` in Python).

The ctypes callback object is kept in a module global for the process lifetime: a
callback that is garbage-collected while C still holds its pointer would crash the process.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

log = logging.getLogger("promptless.lm.llama_cpp")

# enum ggml_log_level: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (continues the previous line);
# llama-cpp-python's _logger.py still documents the older order. A model load logs ~1,400 lines at 1 and 2.
_LEVELS = {0: logging.INFO, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.INFO, 4: logging.INFO}
_CONT = 5

_lock = threading.Lock()
_installed: Any = None  # the ctypes callback, referenced for the life of the process
_state = {"level": logging.DEBUG, "pending": ""}


def _forward(level: int, text: bytes | None, user_data: Any) -> None:
    """Collect fragments into lines; log each line. Never raises into C."""
    try:
        piece = (text or b"").decode("utf-8", "replace")
        if level != _CONT:
            _state["level"] = _LEVELS.get(level, logging.DEBUG)
        lines = (_state["pending"] + piece).split("\n")
        _state["pending"] = lines.pop()
        for line in lines:
            if line.strip() and log.isEnabledFor(_state["level"]):
                log.log(_state["level"], "llama.cpp: %s", line.rstrip())
    except Exception:  # an exception must not cross into llama.cpp's C frames
        pass


def silence() -> bool:
    """Route llama.cpp's log through ``promptless.lm.llama_cpp`` (once per process); False without llama_cpp."""
    global _installed
    with _lock:
        if _installed is not None:
            return True
        try:
            import llama_cpp  # lazy: llama-cpp-python loads a native library
        except ImportError:
            return False
        callback = llama_cpp.llama_log_callback(_forward)
        llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
        _installed = callback
        return True
