"""The embedding cache: hits recompute nothing, keys separate systems/backends, damage heals."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import morphlab.recognition.cache as cache_mod
from morphlab.recognition.base import create_system
from morphlab.recognition.cache import EmbeddingCache, embed_files


@pytest.fixture()
def photos(frll_pairs, tmp_path):
    """Copies of 4 FRLL photos (copies: renamed files must still hit the cache)."""
    out = []
    for i, n, s in frll_pairs[:2]:
        for p in (n, s):
            dst = tmp_path / "photos" / f"{i}_{p.parent.name}.jpg"
            dst.parent.mkdir(exist_ok=True)
            shutil.copy(p, dst)
            out.append(dst)
    return out


def test_second_run_is_all_hits_and_reads_no_image(photos, tmp_path, monkeypatch, frll_faces):
    system = create_system("lbph")
    cache_dir = tmp_path / "cache"
    first = embed_files(system, photos, cache_dir=cache_dir)
    assert (first.hits, first.computed, first.failures) == (0, len(photos), {})

    def boom(*a, **k):
        raise AssertionError("a cache hit must not read the image")

    monkeypatch.setattr(cache_mod, "read_image", boom)
    second = embed_files(system, photos, cache_dir=cache_dir)
    assert (second.hits, second.computed) == (len(photos), 0)
    for p in map(str, photos):
        np.testing.assert_array_equal(first.embeddings[p], second.embeddings[p])
    # renamed copy of the same bytes: still a hit
    renamed = photos[0].with_name("renamed.jpg")
    shutil.copy(photos[0], renamed)
    assert embed_files(system, [renamed], cache_dir=cache_dir).hits == 1


def test_keys_separate_systems_and_backends(photos, tmp_path):
    cache_dir = tmp_path / "cache"
    a = create_system("lbph")
    b = create_system("lbph", grid=(4, 4))  # another version: another database
    assert a.cache_key() != b.cache_key()
    embed_files(a, photos[:1], cache_dir=cache_dir)
    assert embed_files(b, photos[:1], cache_dir=cache_dir).computed == 1
    c = EmbeddingCache(a, cache_dir)
    assert len(c) == 1
    assert c.get_many(["0" * 64], "dlib-1") == {}


def test_failures_are_reported_not_dropped(photos, tmp_path):
    blank = tmp_path / "blank.png"
    from morphlab.io import write_image

    write_image(blank, np.full((200, 200, 3), 128, np.uint8))
    res = embed_files(create_system("lbph"), [photos[0], blank, tmp_path / "missing.jpg"],
                      cache_dir=tmp_path / "cache")
    assert list(res.embeddings) == [str(photos[0])]
    assert "no face" in res.failures[str(blank)]
    assert "not found" in res.failures[str(tmp_path / "missing.jpg")]


def test_interrupted_batch_stores_nothing_and_rerun_completes(photos, tmp_path):
    system = create_system("lbph")
    cache = EmbeddingCache(system, tmp_path / "cache")
    vec = np.ones(8, np.float32)

    def items():
        yield "a" * 64, vec
        raise KeyboardInterrupt  # killed while the batch is being prepared

    with pytest.raises(KeyboardInterrupt):
        cache.put_many(items(), "k")
    assert len(cache) == 0
    cache.put_many([("a" * 64, vec), ("b" * 64, 2 * vec)], "k")
    got = cache.get_many(["a" * 64, "b" * 64, "c" * 64], "k")
    assert set(got) == {"a" * 64, "b" * 64}
    np.testing.assert_array_equal(got["b" * 64], 2 * vec)


def test_corrupt_database_is_moved_aside(tmp_path, caplog):
    cache = EmbeddingCache("sys-1", tmp_path)
    cache.path.parent.mkdir(parents=True)
    cache.path.write_bytes(b"this is not a sqlite database" * 100)
    cache.put_many([("a" * 64, np.zeros(4, np.float32))], "k")
    assert len(cache) == 1
    assert list(cache.path.parent.glob("*.corrupt-*")), "the damaged file is kept for inspection"
    assert "unusable" in caplog.text


def test_worker_processes_share_the_cache(photos, tmp_path):
    system = create_system("lbph")
    res = embed_files(system, photos, cache_dir=tmp_path / "cache", workers=2, batch_size=1)
    assert res.computed == len(photos) and not res.failures
    again = embed_files(system, photos, cache_dir=tmp_path / "cache")
    assert again.hits == len(photos)
    for p in map(str, photos):
        np.testing.assert_allclose(res.embeddings[p], again.embeddings[p])


def test_file_backend_is_never_cached(frll_pairs, tmp_path):
    """Sidecar landmarks can change while the pixels do not: no stale embeddings."""
    system = create_system("lbph")
    path = frll_pairs[0][1]  # neutral photo with its .tem sidecar
    r1 = embed_files(system, [path], backend="file", cache_dir=tmp_path / "cache")
    r2 = embed_files(system, [path], backend="file", cache_dir=tmp_path / "cache")
    assert (r1.computed, r2.computed, r2.hits) == (1, 1, 0)


def test_several_systems_read_each_image_once_and_count_their_own_work(photos, tmp_path,
                                                                        monkeypatch):
    from morphlab.recognition.cache import embed_many

    a, b = create_system("lbph"), create_system("lbph", grid=(4, 4))
    cache_dir = tmp_path / "cache"
    embed_files(a, photos[:1], cache_dir=cache_dir)  # a has one of them cached
    reads = []
    real = cache_mod.read_image
    monkeypatch.setattr(cache_mod, "read_image", lambda p: reads.append(p) or real(p))
    run = embed_many([a, b], photos, cache_dir=cache_dir, batch_size=3)
    assert sorted(map(str, reads)) == sorted(map(str, photos))  # once each, for both systems
    ra, rb = run.results
    assert (ra.hits, ra.computed, rb.hits, rb.computed) == (1, 3, 0, 4)
    assert ra.seconds > 0 and rb.seconds > 0 and ra.faces_per_second == 3 / ra.seconds
    assert run.wall_seconds >= run.prepare_seconds > 0
    assert ra.embeddings[str(photos[1])].shape != rb.embeddings[str(photos[1])].shape
    # the same embeddings as one system at a time, and this process stored them all
    alone = embed_files(b, photos, cache_dir=tmp_path / "other", batch_size=1)
    for p in map(str, photos):
        np.testing.assert_array_equal(rb.embeddings[p], alone.embeddings[p])
    n_reads = len(reads)
    again = embed_many([a, b], photos, cache_dir=cache_dir)
    assert [r.hits for r in again.results] == [4, 4] and len(reads) == n_reads
