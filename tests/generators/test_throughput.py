"""The generate speed-ups keep the output: bounding-box erosion, the encode pool, the
recorded PNG level, determinism (embedded sample and small generated sets only)."""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from runner_testgens import AverageGen, snapshot

from morphlab import geometry as geo
from morphlab.generators import batches, runner
from morphlab.generators.runner import (
    MANIFEST_NAME,
    RUN_NAME,
    RunConflictError,
    generate_attack_set,
    load_manifest,
)
from morphlab.io import encode_image, image_from_bytes, read_image, sha256_file

VARIANTS = {"variants": ["plain", "inverted"]}


def _full_erosion(mask: np.ndarray, r: int) -> np.ndarray:
    """The erosion ``erode_mask`` did before: the whole image at once."""
    if r <= 0:
        return mask.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.erode(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)


def test_erode_mask_equals_whole_image_erosion_on_the_sample(sample_faces):
    """Face hulls of the sample (and the same hull touching the image border), at the
    feather radii the landmark generator uses: identical to eroding the whole image."""
    img, face = sample_faces[0][1]
    h, w = img.shape[:2]
    hull = geo.hull_mask(face.landmarks, (w, h))
    shifted = np.roll(hull, -int(face.landmarks[:, 1].min()) - 5, axis=0)  # cut by the top
    for mask in (hull, shifted, np.zeros_like(hull)):
        for r in (0, 1, 3, 12, 30):
            assert np.array_equal(geo.erode_mask(mask, r), _full_erosion(mask, r)), r
    assert geo.erode_mask(hull, 12).sum() < hull.sum()  # it does erode


def test_erode_mask_equals_whole_image_erosion_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(100):
        h, w = rng.integers(3, 60, size=2)
        mask = (rng.random((h, w)) < rng.random()).astype(np.uint8) * rng.integers(1, 256)
        mask = mask.astype(np.uint8)
        r = int(rng.integers(0, 10))
        assert np.array_equal(geo.erode_mask(mask, r), _full_erosion(mask, r))


def run(pairs_csv: Path, out: Path, **kw):
    kw.setdefault("progress", False)
    return generate_attack_set(pairs_csv, AverageGen, VARIANTS, out, **kw)


class _Serial:
    """An executor running each job at once, in the calling thread."""

    def submit(self, fn, *args):
        fut: cf.Future = cf.Future()
        fut.set_result(fn(*args))
        return fut


def test_encode_pool_writes_like_a_serial_run(pairs_csv, tmp_path, monkeypatch):
    """In-process runs write every image in the encode threads, atomically (no temp file
    left, each file hashes to its line); -j 1 with the pool, -j 1 serial and -j 2 give
    byte-identical folders."""
    threads = []
    real = batches._write_output

    def spy(*args):
        threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(batches, "_write_output", spy)
    s = run(pairs_csv, tmp_path / "pool")
    assert (s.generated, s.failed, s.morphs) == (6, 0, 12)
    assert len(threads) == 12 and all(t.startswith("morphlab-encode") for t in threads)
    assert not list((tmp_path / "pool").glob(".*.tmp"))
    for rec in load_manifest(tmp_path / "pool", verify=True):
        assert sha256_file(rec["path"]) == rec["sha256"]

    monkeypatch.setattr(batches, "_encoder", lambda: _Serial())
    run(pairs_csv, tmp_path / "serial")
    monkeypatch.undo()
    run(pairs_csv, tmp_path / "j2", jobs=2)
    assert snapshot(tmp_path / "pool") == snapshot(tmp_path / "serial") == snapshot(tmp_path / "j2")


def test_contact_page_thumbnails_come_from_memory_with_the_same_bytes(pairs_csv, tmp_path,
                                                                     monkeypatch):
    """The runner's contact page does not decode the morphs it just wrote (their
    thumbnails are made from the images in memory), and it is byte for byte the page made
    by decoding every file (-j 1 and -j 2)."""
    from morphlab.reports import contact

    read = []
    real = contact._read_for_thumb
    monkeypatch.setattr(contact, "_read_for_thumb", lambda p, h: read.append(Path(p)) or real(p, h))
    for jobs in (1, 2):
        out = tmp_path / f"j{jobs}"
        read.clear()
        run(pairs_csv, out, jobs=jobs)
        assert read and not [p for p in read if out in p.parents], "a morph was decoded"
        page = (out / "contact.html").read_bytes()
        read.clear()
        title = re.search(rb"<title>(.*?)</title>", page).group(1).decode()
        contact.write_contact_page(out / MANIFEST_NAME, out / "decoded.html", title=title,
                                   link_contributors=False)
        assert len([p for p in read if out in p.parents]) == 12  # this one decodes them
        assert (out / "decoded.html").read_bytes() == page


def test_png_level_is_recorded_and_used(pairs_csv, tmp_path):
    run(pairs_csv, tmp_path / "fast")  # the default: fpng
    run(pairs_csv, tmp_path / "six", png_compression=6)
    run(pairs_csv, tmp_path / "opencv-fast", png_compression="fast")
    for folder, level in ((tmp_path / "fast", "fpng"), (tmp_path / "six", 6),
                          (tmp_path / "opencv-fast", "fast")):
        config = json.loads((folder / RUN_NAME).read_text())
        assert config["png_compression"] == level
        recs = load_manifest(folder)
        assert recs and all(r["png_compression"] == level for r in recs)
        for r in recs:  # the file holds exactly that encoding of its pixels
            data = Path(r["path"]).read_bytes()
            assert encode_image(image_from_bytes(data), ".png", png_compression=level) == data
    fast, six = load_manifest(tmp_path / "fast"), load_manifest(tmp_path / "six")
    for a, b in zip(fast, six):  # lossless: the same pixels, other bytes
        assert a["sha256"] != b["sha256"]
        assert np.array_equal(read_image(a["path"]), read_image(b["path"]))
    jpg = run(pairs_csv, tmp_path / "jpg", image_format="jpg")
    assert json.loads((tmp_path / "jpg" / RUN_NAME).read_text())["png_compression"] is None
    assert all("png_compression" not in r for r in load_manifest(jpg.manifest))


def test_bad_png_level_is_refused(pairs_csv, tmp_path):
    with pytest.raises(ValueError, match="png_compression must be an integer 0-9"):
        run(pairs_csv, tmp_path / "x", png_compression=12)
    assert not (tmp_path / "x").exists()


def test_another_level_is_refused_on_resume(pairs_csv, tmp_path):
    run(pairs_csv, tmp_path / "set")
    with pytest.raises(RunConflictError, match=r"png_compression: 'fpng' → 3"):
        run(pairs_csv, tmp_path / "set", png_compression=3)
    s = run(pairs_csv, tmp_path / "set")  # the default continues at the recorded level
    assert (s.skipped, s.generated) == (6, 0)


def test_an_older_run_continues_at_level_3(pairs_csv, tmp_path):
    """A run.json and manifest written before the level was recorded (level 3, the only
    one then): a plain re-run finishes it at level 3, the same bytes as a fresh level-3
    run; asking for another level is refused, naming both."""
    ref = tmp_path / "ref"
    run(pairs_csv, ref, png_compression=3)
    old = tmp_path / "old"
    run(pairs_csv, old, png_compression=3)
    config = json.loads((old / RUN_NAME).read_text())
    del config["png_compression"]
    (old / RUN_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    lines = [json.loads(t) for t in (old / MANIFEST_NAME).read_text().splitlines()]
    for rec in lines:
        del rec["png_compression"]
    (old / MANIFEST_NAME).write_text("".join(runner.dumps_record(r) + "\n" for r in lines[:-4]))

    with pytest.raises(RunConflictError, match=r"png_compression: 3 → 'fast'"):
        run(pairs_csv, old, png_compression="fast")
    s = run(pairs_csv, old)
    assert (s.skipped, s.generated) == (4, 2)
    assert snapshot(old) == snapshot(ref)


def test_landmark_generator_is_deterministic_across_jobs(sample_dir, tmp_path, monkeypatch):
    """The real generator (both variants, dlib) on the embedded sample: the same command
    twice, and -j 2 (workers forked from this process, which ran OpenCV's thread pool
    just before), give byte-identical folders; a -j 2 run resumed after losing a morph
    ends with the same bytes too."""
    from morphlab import workers

    ids = ("002", "003", "004", "005")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("pair_id,subject_a,image_a,subject_b,image_b\n" + "".join(
        f"{k + 1:04d},{a},neutral/{a}_03.jpg,{b},neutral/{b}_03.jpg\n"
        for k, (a, b) in enumerate(itertools.pairwise(ids))))
    kw = {"dataset_dir": sample_dir, "progress": False}
    generate_attack_set(pairs, "landmark", {}, tmp_path / "a", **kw)
    generate_attack_set(pairs, "landmark", {}, tmp_path / "b", **kw)
    methods = []
    real = workers.multiprocessing.get_context
    monkeypatch.setattr(workers.multiprocessing, "get_context",
                        lambda m=None: (methods.append(m), real(m))[1])
    generate_attack_set(pairs, "landmark", {}, tmp_path / "c", jobs=2, **kw)
    assert methods == (["fork"] if workers.resolve_start_method("fork") == "fork" else ["spawn"])
    a = snapshot(tmp_path / "a")
    assert sum(n.endswith(".png") for n in a) == 6
    assert a == snapshot(tmp_path / "b") == snapshot(tmp_path / "c")
    lost = sorted((tmp_path / "c").glob("0002_*_spliced.png"))
    assert len(lost) == 1
    lost[0].unlink()
    s = generate_attack_set(pairs, "landmark", {}, tmp_path / "c", jobs=2, **kw)
    assert (s.skipped, s.generated, s.failed) == (2, 1, 0)
    assert snapshot(tmp_path / "c") == a


def test_forked_workers_survive_opencv_threads_of_the_parent(tmp_path):
    """OpenCV's pthreads pool busy in the parent, then workers forked that reconfigure
    OpenCV (as every runner worker does): without the pool stopped around the fork the
    child waits forever on the parent's condition variable. Run in a subprocess, so that
    a regression fails on the timeout instead of hanging the suite."""
    script = (
        "import cv2, numpy as np\n"
        "from morphlab.workers import run_tasks\n"
        "img = np.random.default_rng(0).integers(0, 255, (900, 900, 3), dtype=np.uint8)\n"
        "cv2.setNumThreads(4)\n"
        "for _ in range(3):\n"
        "    cv2.resize(img, (1800, 1800), interpolation=cv2.INTER_CUBIC)\n"
        "def init():\n"
        "    cv2.setNumThreads(1)\n"
        "def work(k):\n"
        "    return int(cv2.GaussianBlur(img, (9, 9), 2)[k, k, 0])\n"
        "out = []\n"
        "run_tasks(work, list(range(4)), out.append, jobs=2, initializer=init,\n"
        "          start_method='fork')\n"
        "assert cv2.getNumThreads() == 4, cv2.getNumThreads()\n"
        "print(sorted(out) == sorted(work(k) for k in range(4)))\n"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "True"


def test_dlib_quick_pass_falls_back_to_the_full_search(sample_dir):
    """The quick pass (no upsampling, 480 px) finds a portrait's face; a face too small
    for it (~90 px in a 1350 px frame) is still found, by the full search."""
    from morphlab.face import create_backend
    from morphlab.face.dlib_backend import _run_detector

    img = read_image(sample_dir / "neutral" / "002_03.jpg")
    quick, full = create_backend("dlib"), create_backend("dlib", fast_side=None)
    assert quick.cache_key() != full.cache_key() and "fast480" in quick.cache_key()
    assert len(_run_detector(img, 480, 0, 0.0)) == 1
    face_q, face_f = quick.detect(img)[0], full.detect(img)[0]
    assert np.abs(face_q.landmarks - face_f.landmarks).mean() < 3.0  # px, 600 px photo

    small = cv2.resize(img, (200, 200), interpolation=cv2.INTER_AREA)
    canvas = np.full((1350, 1350, 3), 128, np.uint8)
    canvas[600:800, 500:700] = small
    assert _run_detector(canvas, 480, 0, 0.0) == []
    boxes = quick.boxes(canvas)
    assert len(boxes) == 1
    assert np.allclose(boxes[0][0], full.boxes(canvas)[0][0])


def test_throughput_benchmark_runs_tiny(sample_dir, tmp_path):
    """benchmarks/throughput.py end to end on the embedded sample (2 pairs, one system):
    every section prints and records its figures; the cached paths hit their caches."""
    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": str(repo), "MORPHLAB_CACHE": str(tmp_path / "cache")}
    res = subprocess.run(
        [sys.executable, str(repo / "benchmarks" / "throughput.py"), "--data", str(sample_dir),
         "--pairs", "2", "--ref-pairs", "1", "--systems", "dlib-resnet", "--faces", "6",
         "--stage-repeat", "1", "--json", str(out)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    data = json.loads(out.read_text())
    assert set(data["generate"]) == {"j1-cold", "j1-cached", "j2-cold", "j2-cached"}
    assert all(g["morphs_per_s"] > 0 and g["x_reference"] > 0 for g in data["generate"].values())
    assert data["reference"]["pairs"] == 1
    emb = data["map_score"]["dlib-resnet"]
    assert emb["cached"]["hits"] == 6 and emb["cached"]["computed"] == 0
    assert emb["cold"]["computed"] == emb["uncached"]["computed"] == 6
    det = data["detect_eval"]
    assert det["uncached"]["crops"] == det["cached"]["crops"] == 8  # 4 photos + 4 morphs
    assert len(data["load_start"]) == len(data["load_end"]) == 3
    for text in ("morphs/s", "faces/s", "crops/s", "load average at end"):
        assert text in res.stdout
