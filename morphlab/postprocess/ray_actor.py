"""``postprocess`` on Ray workers (``--executor ray``).

The design of ``generate`` on Ray (:class:`morphlab.ray_executor.RayExecutor` and its
``_MorphActor``): each Ray actor computes what a local worker computes
(:func:`morphlab.postprocess.sets.compute`: read, process, encode) and returns the encoded
bytes with the manifest fields; this process, which holds the folder's lock, alone writes
the files (atomically) and the manifest lines. A Ray run therefore writes the same bytes
as a local run with the same seed (images, manifest, contact sheet), and either continues
the other after an interruption.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    from morphlab.ray_executor import RayExecutor

#: At most this many images per actor call (the progress bar moves per call).
CHUNK = 8


class PostprocessActor:
    """One Ray worker of ``postprocess``: processes chunks of images, writes nothing."""

    def __init__(self) -> None:
        import cv2

        cv2.setNumThreads(1)  # one OpenCV thread per worker, as a local worker process

    def process(self, tasks: list[tuple]) -> list[dict]:
        """:func:`~morphlab.postprocess.sets.compute` of each task, in the tasks' order."""
        from morphlab.postprocess.sets import compute

        return [compute(t) for t in tasks]


def chunks_of(tasks: Sequence[tuple], workers: int) -> list[list[tuple]]:
    """Contiguous chunks: about four per worker, at most :data:`CHUNK` images each."""
    size = max(1, min(CHUNK, -(-len(tasks) // (4 * max(1, workers)))))
    return [list(tasks[i:i + size]) for i in range(0, len(tasks), size)]


def process_on_ray(executor: "RayExecutor", tasks: Sequence[tuple],
                   on_result: Callable[[dict], None], *, crash_message: str) -> None:
    """Process ``tasks`` (``(src, dst, ops, seed, sha256)``) on Ray; write each result here.

    ``on_result`` gets each image's result (as a local worker's: ``sha256`` instead of
    the bytes) once its file is written, in completion order.

    Raises:
        ChildProcessError: an actor died (``crash_message``).
        OSError: the disk is full or read-only (the run stops; a re-run continues).
        morphlab.workers.Interrupted: Ctrl-C / SIGTERM (the actors are killed first).
    """
    from morphlab.postprocess.sets import write_result

    chunks = chunks_of(tasks, executor.workers)

    def done(k: int, results: list[dict]) -> None:
        for task, res in zip(chunks[k], results):
            on_result(write_result(res, Path(task[1])))

    executor.map(PostprocessActor, (), "process", chunks, done, crash_message=crash_message)
