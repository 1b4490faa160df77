"""The aligned-crop cache of the detect commands and their parallel alignment (-j).

Cached crops are bit-identical to fresh ones; any alignment setting that changes the crop
misses; a corrupt, truncated, foreign or tampered entry is recomputed, never trusted;
``use_cache=False`` reads and writes nothing; ``jobs=2`` gives exactly what ``jobs=1`` does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import morphlab.io
from morphlab.detectors import crop_cache, preprocess
from morphlab.detectors.preprocess import NO_FACE, UNREADABLE, align_faces, align_image, crop_settings_key
from morphlab.face.base import create_backend

SIZE = 64


@pytest.fixture()
def images(sample_dir: Path, no_face_image: Path, tmp_path: Path) -> list[Path]:
    """Four sample photos, a face-less image and a file that is no image."""
    folder = tmp_path / "images"
    folder.mkdir()
    out = []
    for p in sorted((sample_dir / "neutral").glob("*.jpg"))[:4]:
        out.append(Path(shutil.copy(p, folder / p.name)))
    out.append(Path(shutil.copy(no_face_image, folder / no_face_image.name)))
    (folder / "998_01.jpg").write_bytes(b"not an image")
    return [*out, folder / "998_01.jpg"]


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / crop_cache.SUBDIR).rglob("*.npz"))


@pytest.fixture()
def reads(monkeypatch) -> list[Path]:
    """The images decoded (morphlab.io.read_image calls) from now on."""
    seen: list[Path] = []
    real = morphlab.io.read_image

    def counting(path, *args, **kwargs):
        seen.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(morphlab.io, "read_image", counting)
    return seen


def _same(a, b) -> None:
    assert a.paths == b.paths and a.index.tolist() == b.index.tolist()
    assert a.crops.dtype == b.crops.dtype == np.uint8 and np.array_equal(a.crops, b.crops)
    assert a.failures == b.failures and a.kinds == b.kinds


def test_cached_crops_are_bit_identical_to_fresh_ones(images, tmp_path, reads):
    cache = tmp_path / "cache"
    fresh = align_faces(images, size=SIZE, cache_dir=tmp_path / "unused", use_cache=False,
                        progress=False)
    assert not (tmp_path / "unused").exists()  # use_cache=False: nothing read or written
    assert len(fresh.paths) == 4 and fresh.kinds == {images[4]: NO_FACE, images[5]: UNREADABLE}
    cold = align_faces(images, size=SIZE, cache_dir=cache, progress=False)
    assert len(_entries(cache)) == 4  # one per crop; failures are not stored
    del reads[:]
    warm = align_faces(images, size=SIZE, cache_dir=cache, progress=False)
    assert reads == images[4:]  # only the two failures are decoded again
    _same(cold, fresh)
    _same(warm, fresh)
    # and the crop is the one align_image cuts from the photo
    from morphlab.face.cache import get_face

    img = morphlab.io.read_image(images[0])
    direct, _ = align_image(img, get_face("dlib", images[0], img, cache_dir=cache), SIZE)
    assert np.array_equal(warm.crops[0], direct)


def test_a_copied_image_hits_and_each_alignment_setting_misses(images, tmp_path, reads, monkeypatch):
    cache = tmp_path / "cache"
    faces = images[:2]
    base = align_faces(faces, size=SIZE, cache_dir=cache, progress=False)
    copy = tmp_path / "renamed.jpg"
    shutil.copy(faces[0], copy)
    del reads[:]
    again = align_faces([copy], size=SIZE, cache_dir=cache, progress=False)
    assert reads == [] and np.array_equal(again.crops[0], base.crops[0])  # keyed by content

    dlib = create_backend("dlib")
    keys = {crop_settings_key(dlib, SIZE)}
    for what, kwargs in (("crop size", {"size": SIZE + 8}),
                         ("backend options", {"backend": create_backend("dlib", upsample=0)})):
        del reads[:]
        n = len(_entries(cache))
        out = align_faces(faces, **{"size": SIZE, **kwargs}, cache_dir=cache, progress=False)
        assert reads == faces, f"{what}: cached crops were reused"
        assert len(_entries(cache)) == n + 2 and len(out.paths) == 2
        keys.add(crop_settings_key(kwargs.get("backend", dlib), kwargs.get("size", SIZE)))
    monkeypatch.setattr(preprocess, "ALIGN_VERSION", preprocess.ALIGN_VERSION + 1)
    keys.add(crop_settings_key(dlib, SIZE))
    del reads[:]
    align_faces(faces, size=SIZE, cache_dir=cache, progress=False)
    assert reads == faces, "a new alignment version reused old crops"
    assert len(keys) == 4


def _entry_of(cache: Path, image: Path) -> Path:
    from morphlab.io import sha256_file

    return crop_cache.entry_path(cache, sha256_file(image), crop_settings_key(create_backend("dlib"), SIZE))


def test_a_corrupt_entry_is_recomputed_never_trusted(images, tmp_path, reads, caplog):
    cache = tmp_path / "cache"
    faces = images[:4]
    fresh = align_faces(faces, size=SIZE, cache_dir=cache, progress=False)
    e0, e1, e2, e3 = (_entry_of(cache, p) for p in faces)
    assert all(e.is_file() for e in (e0, e1, e2, e3))
    e0.write_bytes(e0.read_bytes()[: e0.stat().st_size // 2])  # truncated
    shutil.copy(e3, e1)  # another image's entry under this name
    with np.load(e2) as z:  # pixels changed, the rest (and its recorded hash) kept
        fields = {k: z[k] for k in z.files}
    fields["crop"] = fields["crop"].copy()
    fields["crop"][0, 0, 0] ^= 1
    with open(e2, "wb") as fh:
        np.savez(fh, **fields)
    del reads[:]
    with caplog.at_level("WARNING", logger="morphlab.detectors.crop_cache"):
        warm = align_faces(faces, size=SIZE, cache_dir=cache, progress=False)
    assert sorted(reads) == sorted(faces[:3])  # the three bad entries recomputed
    _same(warm, fresh)
    assert caplog.text.count("ignoring unusable crop cache entry") == 3
    assert "do not match their recorded sha256" in caplog.text
    # and rewritten: a third run decodes nothing
    del reads[:]
    _same(align_faces(faces, size=SIZE, cache_dir=cache, progress=False), fresh)
    assert reads == []


def test_parallel_alignment_gives_what_one_process_gives(images, tmp_path):
    one = align_faces(images, size=SIZE, jobs=1, use_cache=False, progress=False)
    two = align_faces(images, size=SIZE, jobs=2, cache_dir=tmp_path / "cache", progress=False)
    _same(two, one)
    assert len(_entries(tmp_path / "cache")) == 4  # the workers' crops are stored by this process


def test_an_unwritable_cache_only_costs_the_speed_up(images, tmp_path, caplog):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level("WARNING"):
        out = align_faces(images[:2], size=SIZE, cache_dir=blocker, progress=False)
    assert len(out.paths) == 2
    assert "could not write crop cache entry" in caplog.text


def test_entries_are_written_atomically_without_fsync(tmp_path, monkeypatch):
    import os

    calls = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    crop = np.arange(SIZE * SIZE * 3, dtype=np.uint8).reshape(SIZE, SIZE, 3)
    entry = crop_cache.entry_path(tmp_path, "ab" * 32, "key")
    crop_cache.save_crop(entry, crop, "ab" * 32, "key")
    assert calls == []  # a cache entry is checked on reading: no fsync (~10 ms each)
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no temporary file left
    assert np.array_equal(crop_cache.load_crop(entry, "ab" * 32, "key", SIZE), crop)
    assert crop_cache.load_crop(entry, "cd" * 32, "key", SIZE) is None  # another image's key


def test_parallel_alignment_sends_the_backend_once_per_worker(images, tmp_path, monkeypatch):
    from morphlab.face.dlib_backend import DlibBackend

    sent = []  # pickles of the backend instance (made in this process)
    monkeypatch.setattr(DlibBackend, "__getstate__",
                        lambda self: sent.append(1) or dict(self.__dict__), raising=False)
    be = create_backend("dlib")
    assert isinstance(be, DlibBackend)
    out = align_faces(images, size=SIZE, backend=be, jobs=2, use_cache=False, progress=False)
    assert len(out.paths) == 4
    assert 1 <= len(sent) <= 2  # once per worker, not once per image (6)
