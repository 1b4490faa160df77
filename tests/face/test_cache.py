"""The landmark cache: keyed by content and backend, atomic, robust to corrupt entries."""

from __future__ import annotations

import logging
import os
import shutil
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from morphlab.face import MultipleFacesError, NoFaceError, default_cache_root, get_face
from morphlab.face.cache import entry_path
from morphlab.face.dlib_backend import DlibBackend
from morphlab.io import read_image, sha256_file, write_image


class CountingDlib(DlibBackend):
    """dlib, counting how often the detector really runs."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.calls = 0

    def detect(self, image, *, source=None):
        self.calls += 1
        return super().detect(image, source=source)


@pytest.fixture()
def photo(tmp_path, face_path):
    dst = tmp_path / "a.jpg"
    shutil.copyfile(face_path, dst)
    return dst


def entries(root):
    return sorted((root / "landmarks").rglob("*.npz"))


def test_second_call_hits_and_content_is_the_key(photo, tmp_path):
    cache = tmp_path / "cache"
    backend = CountingDlib()
    first = get_face(backend, photo, cache_dir=cache)
    second = get_face(backend, photo, cache_dir=cache)
    assert backend.calls == 1
    np.testing.assert_array_equal(second.landmarks, first.landmarks)
    np.testing.assert_array_equal(second.box, first.box)
    assert (second.scheme, second.score) == (first.scheme, first.score)

    renamed = tmp_path / "elsewhere" / "b.jpg"  # same bytes, other path: a hit
    renamed.parent.mkdir()
    shutil.copyfile(photo, renamed)
    get_face(backend, renamed, cache_dir=cache)
    assert backend.calls == 1

    changed = tmp_path / "a.png"  # other bytes: a miss
    img = read_image(photo)
    img[0, 0] ^= 1
    write_image(changed, img)
    get_face(backend, changed, cache_dir=cache)
    assert backend.calls == 2

    other_options = CountingDlib(upsample=0)  # other backend key: a miss
    get_face(other_options, photo, cache_dir=cache)
    assert other_options.calls == 1
    assert len(entries(cache)) == 3


def test_given_image_is_used_on_a_miss(photo, tmp_path, face_image):
    backend = CountingDlib()
    face = get_face(backend, photo, face_image, cache_dir=tmp_path / "c")
    assert backend.calls == 1 and face.landmarks.shape == (68, 2)


def test_no_face_is_cached_explicitly(blank_path, tmp_path):
    backend = CountingDlib()
    for _ in range(2):
        with pytest.raises(NoFaceError, match="grey.png"):
            get_face(backend, blank_path, cache_dir=tmp_path)
    assert backend.calls == 1


def test_policy_is_applied_to_cached_results(two_faces_path, tmp_path):
    backend = CountingDlib()
    with pytest.warns(RuntimeWarning, match="using the largest"):
        get_face(backend, two_faces_path, cache_dir=tmp_path)
    with pytest.raises(MultipleFacesError):
        get_face(backend, two_faces_path, cache_dir=tmp_path, multiple="error")
    assert backend.calls == 1
    with pytest.raises(ValueError, match="multiple must be"):
        get_face(backend, two_faces_path, cache_dir=tmp_path, multiple="first")


@pytest.mark.parametrize("damage", ["garbage", "truncate", "empty", "bitflip", "other-key"])
def test_corrupt_entry_is_ignored_and_recomputed(damage, photo, tmp_path, caplog):
    cache = tmp_path / "cache"
    backend = CountingDlib()
    good = get_face(backend, photo, cache_dir=cache)
    (entry,) = entries(cache)
    if damage == "garbage":
        entry.write_bytes(b"\x00not an npz")
    elif damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:100])
    elif damage == "empty":  # what a power loss can leave of an entry written without fsync
        entry.write_bytes(b"")
    elif damage == "bitflip":  # one byte of the landmark data changed: the zip CRC catches it
        data = bytearray(entry.read_bytes())
        at = data.find(b"landmarks.npy") + 200
        data[at] ^= 0xFF
        entry.write_bytes(bytes(data))
    else:  # a valid entry, but written for other content
        with np.load(entry) as z:
            arrays = dict(z)
        arrays["image_sha256"] = np.array("0" * 64)
        np.savez(entry.with_suffix(""), **arrays)
    with caplog.at_level(logging.WARNING, logger="morphlab.face.cache"):
        again = get_face(backend, photo, cache_dir=cache)
    assert backend.calls == 2
    assert "ignoring unusable landmark cache entry" in caplog.text and entry.name in caplog.text
    np.testing.assert_array_equal(again.landmarks, good.landmarks)
    get_face(backend, photo, cache_dir=cache)  # the entry was rewritten
    assert backend.calls == 2


def test_default_root_follows_env(monkeypatch, tmp_path, photo):
    monkeypatch.setenv("MORPHLAB_CACHE", str(tmp_path / "env-cache"))
    assert default_cache_root() == tmp_path / "env-cache"
    get_face("dlib", photo)
    assert len(entries(tmp_path / "env-cache")) == 1
    monkeypatch.setenv("MORPHLAB_CACHE", "")
    assert default_cache_root() == default_cache_root().home() / ".cache" / "morphlab"


def test_use_cache_false_writes_nothing(photo, tmp_path):
    backend = CountingDlib()
    for _ in range(2):
        get_face(backend, photo, cache_dir=tmp_path / "c", use_cache=False)
    assert backend.calls == 2 and not (tmp_path / "c").exists()


def test_missing_image(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        get_face("dlib", tmp_path / "nope.jpg", cache_dir=tmp_path)


def _worker(args):
    path, cache = args
    return get_face("dlib", path, cache_dir=cache).landmarks


def test_concurrent_processes(photo, tmp_path):
    cache = tmp_path / "cache"
    with ProcessPoolExecutor(4) as pool:
        results = list(pool.map(_worker, [(photo, cache)] * 4))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    (entry,) = entries(cache)
    assert entry == entry_path(cache, sha256_file(photo), DlibBackend().cache_key())
    assert not [p for p in entry.parent.iterdir() if p.suffix == ".tmp"]
    assert os.path.getsize(entry) > 0
