"""Run ``morphlab generate`` on a Ray cluster (``--executor ray``), byte-identical to a local run.

The driver (the ``morphlab`` process) keeps every guarantee of the local runner
(:mod:`morphlab.generators.runner`): it holds the output folder's lock, it alone writes
images (atomically) and manifest lines (after the image), and the manifest is put in
pairs-file order when the run ends. Ray only computes: each Ray **actor** builds the
generator once (a model-based generator loads its model once per actor; ``num_gpus`` per
actor for GPU generators) and turns batches of pairs into **encoded image bytes** plus the
outputs' parameters. Encoding happens with the same function and settings as a local run,
so the images, their hashes and the manifest are the same bytes; a killed Ray run resumes
locally or on Ray, and the other way round.

Ray is optional (``pip install morphlab[ray]``) and imported only here, only when used.
With no ``address`` a private local Ray instance is started for the run and stopped after
it; ``address="auto"`` (or ``HOST:6379``) joins a running cluster (``ray start --head``).
When Ray is already initialised in this process (a test, a notebook), it is used as is and
left running.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")
#: Batches in flight per actor (one running, one queued: no idle gap between batches).
IN_FLIGHT_PER_ACTOR = 2


class RayUnavailableError(ValueError):
    """``--executor ray`` without Ray installed (or with a Ray that cannot start)."""


def import_ray() -> Any:
    """The ``ray`` module, or :class:`RayUnavailableError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayUnavailableError(
            "--executor ray needs Ray, which is not installed: pip install 'morphlab[ray]'"
        ) from None
    return ray


class RayExecutor:
    """Runs the runner's batches on Ray actors; results come back to the driver.

    Args:
        address: a Ray cluster to join (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``);
            None starts a local Ray instance for this run.
        workers: actors to start (each builds one generator); each takes one CPU.
        gpus_per_worker: ``num_gpus`` of each actor (e.g. 1 for arc2face on a GPU node;
            fractions share a GPU).
    """

    def __init__(self, *, address: Optional[str] = None, workers: int = 1,
                 gpus_per_worker: float = 0.0) -> None:
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"Ray workers must be an integer >= 1, got {workers!r}")
        if gpus_per_worker < 0:
            raise ValueError(f"GPUs per Ray worker must be >= 0, got {gpus_per_worker!r}")
        self.address = address
        self.workers = workers
        self.gpus_per_worker = float(gpus_per_worker)
        import_ray()  # fail before the run starts, not after the folder is prepared
        _check_reachable(address)

    def _init(self, ray: Any) -> bool:
        """Connect to (or start) Ray; True when this call started it (and must stop it)."""
        if ray.is_initialized():
            return False
        if log.getEffectiveLevel() > logging.INFO:  # Ray's own notices only with -v
            logging.getLogger("ray").setLevel(logging.ERROR)
        try:
            ray.init(
                address=self.address, log_to_driver=False, include_dashboard=False,
                configure_logging=False, logging_level=logging.WARNING,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local instance"
            raise RayUnavailableError(f"Ray ({where}) could not start: {exc}") from None
        return True

    def bind(self, out_dir: Path, image_suffix: str) -> Callable[..., None]:
        """A :func:`morphlab.workers.run_tasks` stand-in for the runner's batches into
        ``out_dir`` (``fn``, ``jobs`` and ``initializer`` are the local pool's: unused)."""

        def dispatch(fn: Callable, tasks: Sequence[list[dict]], on_result: Callable, *,
                     jobs: int = 1, initializer: Any = None, initargs: tuple = (),
                     crash_message: str = "a Ray worker died") -> None:
            self.run(tasks, on_result, initargs=initargs, out_dir=Path(out_dir),
                     image_suffix=image_suffix, crash_message=crash_message)

        return dispatch

    def run(self, batches: Sequence[list[dict]], on_result: Callable[[list[dict]], None], *,
            initargs: tuple, out_dir: Path, image_suffix: str, crash_message: str) -> None:
        """Morph ``batches`` on Ray actors; ``on_result`` gets each batch's results here.

        Results are ``{"pair_id", "outputs": [{"tag", "file", "sha256", "params",
        "extra"}]}`` or ``{"pair_id", "error"}`` (the runner's format) with every image
        already written into ``out_dir`` (atomically, by this process), in completion order.
        ``initargs`` are the runner's worker set-up arguments (``runner._init_worker``):
        each actor builds its generator and encoding settings from them, as a local worker.

        Raises:
            ChildProcessError: an actor died (``crash_message``).
            morphlab.workers.Interrupted: Ctrl-C / SIGTERM (the actors are killed first).
        """
        self.map(_MorphActor, (initargs, image_suffix), "morph", batches,
                 lambda _i, results: on_result(write_results(results, Path(out_dir))),
                 crash_message=crash_message)

    def map(self, actor_class: type, actor_args: tuple, method: str, chunks: Sequence[Any],
            on_result: Callable[[int, Any], None], *,
            crash_message: str = "a Ray worker died") -> None:
        """Call ``actor_class(*actor_args).<method>(chunk)`` for every chunk, on Ray actors.

        The one way morphlab uses Ray (``generate``, ``postprocess``, ``map-score``,
        ``detect score``): ``min(workers, len(chunks))`` actors are built once each (a
        model loads once per actor; ``num_gpus`` per actor), every actor keeps
        :data:`IN_FLIGHT_PER_ACTOR` chunks queued, and ``on_result(index, result)`` runs
        **here, on the driver**, in completion order (``index`` is the chunk's position in
        ``chunks``). Workers only compute and return values; the driver writes.

        Ray is started for the call (and stopped after it) unless it is already
        initialised in this process; the actors are killed at the end, on error and on
        Ctrl-C.

        Raises:
            ChildProcessError: an actor died (``crash_message``).
            Exception: the exception an actor's method raised, as it was raised there.
            morphlab.workers.Interrupted: Ctrl-C / SIGTERM (the actors are killed first).
        """
        from morphlab.workers import interruptible

        if not chunks:
            return
        ray = import_ray()
        started = self._init(ray)
        actors: list = []
        try:
            with interruptible():
                remote = ray.remote(num_cpus=1, num_gpus=self.gpus_per_worker)(actor_class)
                n = min(self.workers, len(chunks))
                actors = [remote.remote(*actor_args) for _ in range(n)]
                self._drive(ray, actors, method, chunks, on_result, crash_message)
        finally:
            for a in actors:
                try:
                    ray.kill(a)
                except Exception:  # already dead
                    pass
            if started:
                ray.shutdown()

    def _drive(self, ray: Any, actors: list, method: str, chunks: Sequence[Any],
               on_result: Callable[[int, Any], None], crash_message: str) -> None:
        queue = iter(enumerate(chunks))
        pending: dict = {}  # object ref -> (actor index, chunk index)

        def submit(i: int) -> None:
            item = next(queue, None)
            if item is not None:
                k, chunk = item
                pending[getattr(actors[i], method).remote(chunk)] = (i, k)

        for _ in range(IN_FLIGHT_PER_ACTOR):
            for i in range(len(actors)):
                submit(i)
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            i, k = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError:
                raise ChildProcessError(crash_message) from None
            except ray.exceptions.RayTaskError as exc:
                raise (getattr(exc, "cause", None) or exc) from None
            on_result(k, result)
            submit(i)


def _check_reachable(address: Optional[str], timeout: float = 5.0) -> None:
    """Refuse a ``HOST:PORT`` nobody listens on at once (Ray itself retries for minutes)."""
    import socket

    if not address or address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise RayUnavailableError(
            f"Ray cluster {address}: cannot connect ({exc}); start one with `ray start "
            "--head` there, or leave out --ray-address for a local Ray instance"
        ) from None


def write_results(results: list[dict], out_dir: Path) -> list[dict]:
    """Write the encoded images of an actor's results (atomically) and hash them.

    Returns the results in the runner's format (``data`` replaced by ``sha256``); a pair
    whose image could not be written becomes an error result, and a full or read-only
    disk stops the run (:func:`morphlab.generators.runner.fatal_write_error`).
    """
    from morphlab.generators.runner import fatal_write_error
    from morphlab.io import atomic_write_bytes, sha256_bytes

    out = []
    for res in results:
        if "error" in res:
            out.append(res)
            continue
        try:
            written = []
            for o in res["outputs"]:
                data = o.pop("data")
                atomic_write_bytes(out_dir / o["file"], data)
                written.append({**o, "sha256": sha256_bytes(data)})
            out.append({"pair_id": res["pair_id"], "outputs": written})
        except OSError as exc:
            fatal = fatal_write_error(exc, out_dir)
            if fatal is not None:
                raise fatal from None
            out.append({"pair_id": res["pair_id"], "error": f"{type(exc).__name__}: {exc}"})
    return out


#: runner worker settings that are :func:`morphlab.io.encode_image` keywords.
_ENCODE_KEYS = ("quality", "png_compression")


class _MorphActor:
    """One Ray worker: builds the generator once, returns encoded images (writes nothing)."""

    def __init__(self, initargs: tuple, image_suffix: str) -> None:
        from morphlab.generators import runner

        # the runner's own worker set-up (one OpenCV thread, the generator built once,
        # the encoding settings): the same bytes as a local worker's
        runner._init_worker(*initargs)
        self.suffix = image_suffix
        self.encode = {k: runner._WORKER[k] for k in _ENCODE_KEYS if k in runner._WORKER}

    def morph(self, tasks: list[dict]) -> list[dict]:
        """The runner's ``_run_batch`` contract, with ``data`` (encoded bytes) per output:
        the local worker's own morphing step (``_start_batch``), then the encoding."""
        from morphlab.generators.batches import _error_text, _start_batch
        from morphlab.io import encode_image

        out = []
        for res in _start_batch(tasks):
            try:
                for o in res.get("outputs", ()):
                    o["data"] = encode_image(o.pop("image"), self.suffix, **self.encode)
            except Exception as exc:
                res = {"pair_id": res["pair_id"], "error": _error_text(exc)}
            out.append(res)
        return out


class _ScoreActor:
    """One Ray worker of ``detect score``: scores chunks of images with one model folder."""

    def __init__(self, model_dir: str, use_cache: bool = True) -> None:
        self.model_dir = model_dir
        self.use_cache = use_cache

    def score(self, chunk: tuple[list[str], Optional[list[str]]]) -> list[dict]:
        from morphlab.detect import score_files

        images, live = chunk
        return score_files(self.model_dir, images, live=live, progress=False,
                           use_cache=self.use_cache)


def score_files_ray(model_dir: Any, images: Sequence[Any], *, live: Optional[Sequence[Any]] = None,
                    executor: RayExecutor, progress: bool = True,
                    use_cache: bool = True) -> list[dict]:
    """:func:`morphlab.detect.score_files` with the images scored by Ray workers.

    The images go out in contiguous chunks (a few per worker; each worker loads the model
    per chunk) and the rows come back in the input order: the same rows as a local
    :func:`~morphlab.detect.score_files`, except that a score's last digit may differ
    (floating-point sums depend on the batch scored; a local run split the same way
    differs the same way). ``use_cache=False``: the workers neither read nor write the
    landmark and crop caches (``--no-cache``).
    """
    from tqdm import tqdm

    from morphlab.detect import score_files

    images = [str(p) for p in images]
    live_l = [str(p) for p in live] if live else None
    if not images or (live_l and len(live_l) not in (1, len(images))):
        return score_files(model_dir, images, live=live_l, progress=False,
                           use_cache=use_cache)  # its own errors
    n_chunks = min(len(images), executor.workers * 4)
    bounds = [round(i * len(images) / n_chunks) for i in range(n_chunks + 1)]
    chunks = []
    for lo, hi in zip(bounds, bounds[1:]):
        part = None if live_l is None else (live_l if len(live_l) == 1 else live_l[lo:hi])
        chunks.append((images[lo:hi], part))
    rows: dict[int, list[dict]] = {}
    with tqdm(total=len(images), disable=not progress, unit="image") as bar:
        def done(k: int, result: list[dict]) -> None:
            rows[k] = result
            bar.update(len(result))

        executor.map(_ScoreActor, (str(model_dir), use_cache), "score", chunks, done,
                     crash_message="a Ray worker died while scoring")
    return [row for k in range(len(chunks)) for row in rows[k]]


def make_executor(executor: str, *, address: Optional[str] = None, workers: int = 1,
                  gpus_per_worker: float = 0.0) -> Optional[RayExecutor]:
    """``--executor`` → None (the local process pool) or a :class:`RayExecutor`."""
    if executor == "local":
        if address is not None or gpus_per_worker:
            raise ValueError("--ray-address and --ray-gpus-per-worker need --executor ray")
        return None
    if executor == "ray":
        return RayExecutor(address=address, workers=workers, gpus_per_worker=gpus_per_worker)
    raise ValueError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
