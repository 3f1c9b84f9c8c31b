"""Failures that must stay clean: saved files, the cache after a bad reply, a read-only cache. ScriptedLM only."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

import promptless as pl
from promptless.atomic import write_text_atomic
from promptless.lm.cache import FILE_NAME, Cache
from promptless.testing import ScriptedLM


def test_a_saved_artifact_gets_the_users_normal_file_mode(tmp_path):
    old = os.umask(0o022)
    try:
        path = pl.Predict("q -> a").save(tmp_path / "p.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    path.chmod(0o600)  # a user who locked it down keeps that on the next save
    pl.Predict("q -> a").save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_temp_file_left_by_a_killed_save_is_removed_by_the_next_save(tmp_path):
    target = tmp_path / "p.json"
    stale = tmp_path / ".p.json.abc123.tmp"
    stale.write_text("{half")
    hour_ago = time.time() - 7200
    os.utime(stale, (hour_ago, hour_ago))
    fresh = tmp_path / ".p.json.def456.tmp"  # another writer's, in progress right now: left alone
    fresh.write_text("{")
    write_text_atomic(target, "{}")
    assert target.read_text() == "{}" and not stale.exists() and fresh.exists()


def test_an_unparseable_reply_is_not_replayed_from_the_cache(tmp_path):
    replies = iter(["not json at all", "still not json", '{"answer": "ok"}'])
    lm = ScriptedLM(lambda request: next(replies), cache=Cache(tmp_path))
    predict = pl.Predict("question -> answer", lm=lm)
    with pytest.raises(pl.ParseError):
        predict(question="q")
    assert predict(question="q").answer == "ok"  # asked again, not answered with the cached garbage


def test_a_read_only_prefilled_cache_still_serves_hits(tmp_path, monkeypatch):
    """The cache directory is not writable for the reader (simulated: the tests run as root, who may write)."""
    cache_dir = tmp_path / "cache"
    writer = Cache(cache_dir)
    writer.put("k", {"texts": ["cached"]})
    writer.close()  # the cache was filled, then shipped or mounted read-only
    before = (cache_dir / FILE_NAME).read_bytes()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == cache_dir else real_access(path, mode))
    reader = Cache(cache_dir)
    assert reader.get("k") == {"texts": ["cached"]}
    reader.put("k2", {"texts": ["x"]})  # memory only, no error
    assert reader.get("k2") == {"texts": ["x"]}
    reader.close()
    assert (cache_dir / FILE_NAME).read_bytes() == before  # nothing was written
