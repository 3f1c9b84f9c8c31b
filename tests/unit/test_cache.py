"""The LM cache: two tiers, lazy file creation, and survival of bad files and read-only homes."""

import threading

import promptless as pl
from promptless.lm.cache import FILE_NAME, Cache
from promptless.testing import ScriptedLM


def test_round_trip_through_memory_and_disk(tmp_path):
    Cache(tmp_path).put("k", {"texts": ["hi"]})
    fresh = Cache(tmp_path)  # a new process would see the same file
    assert fresh.get("k") == {"texts": ["hi"]}
    assert fresh.get("missing") is None
    assert (fresh.hits, fresh.misses) == (1, 1)


def test_file_is_created_on_first_write_only(tmp_path):
    cache = Cache(tmp_path / "c")
    assert cache.get("k") is None
    assert not (tmp_path / "c").exists()
    cache.put("k", {"v": 1})
    assert (tmp_path / "c" / FILE_NAME).is_file()


def test_memory_tier_is_bounded_but_disk_keeps_entries(tmp_path):
    cache = Cache(tmp_path, memory_size=2)
    for i in range(5):
        cache.put(str(i), {"v": i})
    assert list(cache._memory) == ["3", "4"]
    assert cache.get("0") == {"v": 0}


def test_unwritable_location_falls_back_to_memory(tmp_path, caplog):
    (tmp_path / "afile").write_text("not a directory")
    cache = Cache(tmp_path / "afile" / "cache")
    cache.put("k", {"v": 1})
    assert cache.get("k") == {"v": 1}
    assert "memory only" in caplog.text


def test_corrupt_file_is_moved_aside_and_recreated(tmp_path, caplog):
    (tmp_path / FILE_NAME).write_bytes(b"this is not sqlite" * 50)
    cache = Cache(tmp_path)
    assert cache.get("k") is None
    cache.put("k", {"v": 1})
    assert Cache(tmp_path).get("k") == {"v": 1}
    assert any(p.name.startswith(f"{FILE_NAME}.corrupt-") for p in tmp_path.iterdir())
    assert "damaged" in caplog.text


def test_damaged_row_is_a_miss(tmp_path):
    cache = Cache(tmp_path)
    cache.put("k", {"v": 1})
    cache._conn.execute("UPDATE entries SET value = '{broken' WHERE key = 'k'")
    cache._conn.commit()
    assert Cache(tmp_path).get("k") is None


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
