"""The LM cache: two tiers, lazy file creation, and survival of bad files, locks and read-only homes."""

import logging
import sqlite3
import threading

import promptless as pl
from promptless.lm.cache import FILE_NAME, Cache
from promptless.testing import ScriptedLM


def corrupt_files(directory):
    return [p.name for p in directory.iterdir() if p.name.startswith(f"{FILE_NAME}.corrupt-")]


def test_round_trip_through_memory_and_disk(tmp_path):
    cache = Cache(tmp_path)
    cache.put("k", {"texts": ["hi"]})
    assert cache.get("k") == {"texts": ["hi"]}  # memory
    fresh = Cache(tmp_path)  # a new process would see the same file
    assert fresh.get("k") == {"texts": ["hi"]}
    assert fresh.get("missing") is None
    assert (fresh.hits, fresh.misses) == (1, 1)


def test_get_returns_a_fresh_copy(tmp_path):
    cache = Cache(tmp_path)
    cache.put("k", {"texts": ["hi"]})
    cache.get("k")["texts"].append("mutated by a caller")
    assert cache.get("k") == {"texts": ["hi"]}


def test_file_is_created_on_first_write_only(tmp_path):
    cache = Cache(tmp_path / "c")
    assert cache.get("k") is None
    cache.clear()
    assert not (tmp_path / "c").exists()
    cache.put("k", {"v": 1})
    assert (tmp_path / "c" / FILE_NAME).is_file()


def test_memory_only_cache_never_touches_disk(tmp_path):
    cache = Cache(tmp_path / "c", disk=False)
    cache.put("k", {"v": 1})
    assert cache.get("k") == {"v": 1}
    assert not (tmp_path / "c").exists()


def test_memory_tier_is_bounded_but_disk_keeps_entries(tmp_path):
    cache = Cache(tmp_path, memory_size=2)
    for i in range(5):
        cache.put(str(i), {"v": i})
    assert list(cache._memory) == ["3", "4"]
    assert cache.get("0") == {"v": 0}  # from disk, and now the most recent in memory
    assert list(cache._memory) == ["4", "0"]


def test_clear_empties_both_tiers(tmp_path):
    cache = Cache(tmp_path)
    cache.put("k", {"v": 1})
    cache.clear()
    assert cache.get("k") is None
    assert Cache(tmp_path).get("k") is None


def test_close_then_reuse_reopens(tmp_path):
    cache = Cache(tmp_path, memory_size=0)
    cache.put("k", {"v": 1})
    cache.close()
    assert cache.get("k") == {"v": 1}


def test_unwritable_location_falls_back_to_memory_with_one_warning(tmp_path, caplog):
    (tmp_path / "afile").write_text("not a directory")  # mkdir fails even for root
    cache = Cache(tmp_path / "afile" / "cache")
    with caplog.at_level(logging.WARNING, logger="promptless.cache"):
        cache.put("k", {"v": 1})
        cache.put("k2", {"v": 2})
    assert cache.get("k") == {"v": 1}
    assert [r.message for r in caplog.records if "memory only" in r.message] != []
    assert len(caplog.records) == 1


def test_corrupt_file_is_moved_aside_and_recreated(tmp_path, caplog):
    garbage = b"this is not sqlite" * 50
    (tmp_path / FILE_NAME).write_bytes(garbage)
    cache = Cache(tmp_path)
    with caplog.at_level(logging.WARNING, logger="promptless.cache"):
        cache.put("k", {"v": 1})
    assert Cache(tmp_path).get("k") == {"v": 1}  # the write was retried on the fresh file
    [aside] = corrupt_files(tmp_path)
    assert (tmp_path / aside).read_bytes() == garbage  # kept, not deleted
    assert "damaged" in caplog.text


def test_corrupt_file_found_by_a_read_is_moved_but_not_recreated(tmp_path):
    (tmp_path / FILE_NAME).write_bytes(b"\x00garbage" * 200)
    cache = Cache(tmp_path)
    assert cache.get("k") is None
    assert len(corrupt_files(tmp_path)) == 1
    assert not (tmp_path / FILE_NAME).exists()
    cache.put("k", {"v": 1})
    assert Cache(tmp_path).get("k") == {"v": 1}


def test_damaged_row_is_a_miss(tmp_path):
    cache = Cache(tmp_path)
    cache.put("k", {"v": 1})
    cache._conn.execute("UPDATE entries SET value = '{broken' WHERE key = 'k'")
    cache._conn.commit()
    assert Cache(tmp_path).get("k") is None


def test_locked_file_is_not_mistaken_for_a_corrupt_one(tmp_path, caplog):
    Cache(tmp_path).put("old", {"v": 0})
    other = sqlite3.connect(tmp_path / FILE_NAME, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process writing for a long time
    try:
        cache = Cache(tmp_path)
        cache.busy_timeout = 0.05
        with caplog.at_level(logging.WARNING, logger="promptless.cache"):
            cache.put("k", {"v": 1})  # does not raise
        assert cache.get("k") == {"v": 1}
        assert "memory only" in caplog.text
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert corrupt_files(tmp_path) == []
    assert Cache(tmp_path).get("old") == {"v": 0}


def test_value_that_is_not_json_is_not_cached_and_does_not_raise(tmp_path):
    cache = Cache(tmp_path)
    cache.put("k", {"v": object()})
    assert cache.get("k") is None


def test_concurrent_use(tmp_path):
    cache = Cache(tmp_path, memory_size=50)
    errors = []

    def worker(t):
        try:
            for i in range(200):
                cache.put(f"{t}-{i}", {"v": i})
                assert cache.get(f"{t}-{i}") == {"v": i}
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(cache.get(f"{t}-{i}") == {"v": i} for t in range(8) for i in range(200))
    fresh = Cache(tmp_path)
    assert all(fresh.get(f"{t}-{i}") == {"v": i} for t in range(8) for i in range(200))


def test_environment_variable_sets_the_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTLESS_CACHE_DIR", str(tmp_path / "env"))
    Cache().put("k", {"v": 1})
    assert (tmp_path / "env" / FILE_NAME).is_file()


def test_lm_answers_repeats_from_cache_and_rollout_ids_bypass_it(tmp_path):
    lm = ScriptedLM([{"answer": "a"}, {"answer": "b"}], cache=Cache(tmp_path))
    predict = pl.Predict("question -> answer", lm=lm)
    assert predict(question="q").answer == "a"
    assert predict(question="q").answer == "a"  # from the cache: the script was not consulted
    assert predict(question="q", config={"rollout_id": 1, "temperature": 1.0}).answer == "b"
    assert len(lm.requests) == 2
    with pl.track_usage() as usage:
        predict(question="q")
    assert usage.cache_hits == 1 and usage.total.calls == 0
