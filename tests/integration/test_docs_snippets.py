"""Docs pages marked ``<!-- docs-test: integration -->`` run as written, on the embedded models.

Each page runs in its own interpreter (see tests/docs_runner.py). Blocks marked
``<!-- server: ... -->`` get the session's llama.cpp server (the ``llama_server``
fixture) through ``PROMPTLESS_DOCS_API_BASE``; without one they are skipped with
the reason, and the rest of the page still runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs_runner import API_BASE_ENV, Page, pages, run_page

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.integration

PAGE_TIMEOUT_S = 900  # the tutorial takes about two minutes on two busy cores; this is the hang guard
INTEGRATION_PAGES = [page for page in pages("integration") if page.blocks]


@pytest.mark.parametrize("page", INTEGRATION_PAGES, ids=lambda page: page.name)
def test_integration_page_runs(page: Page, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    env = {API_BASE_ENV: ""}
    server_note = ""
    if any(block.server for block in page.blocks):
        try:
            env[API_BASE_ENV] = request.getfixturevalue("llama_server")
        except pytest.skip.Exception as why:  # no server here: its blocks are skipped, the page still runs
            server_note = str(why)
    result = run_page(page, timeout=PAGE_TIMEOUT_S, cwd=tmp_path, env=env)
    assert not result.problems(), result.problems()
    ran = [block for block in result.blocks if block.status == "ok"]
    assert ran, f"{page.name}: every block was skipped: {[b.reason for b in result.skipped]}"
    for block in result.blocks:  # shown with -s or -rP: what to paste into the page's output blocks
        detail = block.stdout if block.status == "ok" else f"{block.reason} {server_note}".rstrip() + "\n"
        print(f"--- {page.name}:{block.line} {block.status}\n{detail}", end="")
