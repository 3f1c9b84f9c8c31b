"""Test-wide setup: caches go to a temporary folder, never the user's home."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache_dir(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("PROMPTLESS_CACHE_DIR", str(tmp_path_factory.mktemp("promptless-cache")))
    yield
    patch.undo()
