"""Quiet by default: llama.cpp's own log lines reach logging (shown with -v), never the terminal directly."""

from __future__ import annotations

import logging
import sys
import types

import pytest

from promptless.lm import llama_log


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(llama_log, "_state", {"level": logging.DEBUG, "pending": ""})
    return llama_log


def test_fragments_become_lines_at_the_mapped_levels(fresh, caplog, capsys):
    caplog.set_level(logging.DEBUG, logger="promptless.lm.llama_cpp")
    fresh._forward(3, b"llama_kv_cache_iswa: using full-size ", None)
    fresh._forward(5, b"SWA cache\n", None)  # CONT: the same line, the same level
    fresh._forward(2, b"print_info: file type = Q4_K\nload: vocab ", None)
    fresh._forward(5, b"done\n", None)
    fresh._forward(4, b"\xffbroken utf-8\n", None)
    got = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert got == [
        (logging.INFO, "llama.cpp: llama_kv_cache_iswa: using full-size SWA cache"),
        (logging.DEBUG, "llama.cpp: print_info: file type = Q4_K"),
        (logging.DEBUG, "llama.cpp: load: vocab done"),
        (logging.INFO, "llama.cpp: \ufffdbroken utf-8"),
    ]
    assert capsys.readouterr() == ("", "")


def test_nothing_reaches_stderr_without_logging_configured(fresh, capsys):
    logger = logging.getLogger("promptless.lm.llama_cpp")
    assert not logger.isEnabledFor(logging.INFO) or logging.getLogger().handlers  # no -v: WARNING and up only
    fresh._forward(4, b"an error line\n", None)
    fresh._forward(None, None, None)  # garbage from C never raises back into it
    assert capsys.readouterr().err == ""


def test_silence_installs_one_callback_and_keeps_it_alive(monkeypatch):
    calls = []
    fake = types.SimpleNamespace(
        llama_log_callback=lambda fn: ("callback", fn),
        llama_log_set=lambda callback, user_data: calls.append(callback),
    )
    monkeypatch.setitem(sys.modules, "llama_cpp", fake)
    monkeypatch.setattr(llama_log, "_installed", None)
    assert llama_log.silence() and llama_log.silence()
    assert calls == [("callback", llama_log._forward)]  # once per process
    assert llama_log._installed is calls[0]  # referenced, so ctypes never frees it under C


def test_without_llama_cpp_silence_is_a_no_op(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails
    monkeypatch.setattr(llama_log, "_installed", None)
    assert llama_log.silence() is False


def test_the_embedded_backend_silences_before_it_builds_the_model():
    import inspect

    from promptless.lm import llama

    source = inspect.getsource(llama._load)
    assert source.index("llama_log.silence()") < source.index("Llama(model_path=")
