"""Worker processes that never outlive their command, and prompt interruption.

:func:`run_tasks` runs a function over tasks, in this process (``jobs=1``) or in worker
processes, and hands each result to a callback in the parent (which alone writes the
manifest). Workers are spawned (a fresh interpreter: imports and models are loaded again
in each, ~2-4 s) unless the caller asks for ``start_method="fork"`` (Linux): the workers
are then copies of the parent, sharing what it already loaded copy-on-write, and start in
milliseconds. Fork only where the parent is known to be fork-safe for the work (no
OpenMP/GPU runtime that the workers then use; the landmark generator says so with its
``fork_safe`` attribute). Either way, whatever ends the parent, the workers end too:

- **Ctrl-C / SIGINT, SIGTERM** to the parent: it raises :class:`Interrupted` (a
  ``KeyboardInterrupt``) at once, without waiting for running tasks, and terminates the
  workers before the exception leaves :func:`run_tasks`. The workers ignore SIGINT
  themselves, so a Ctrl-C in a terminal (sent to the whole process group) is handled
  once, by the parent. The command line turns it into exit status ``128 + signal``
  (130 for Ctrl-C, 143 for SIGTERM).
- **The parent dies alone** (SIGKILL, the OOM killer): on Linux each worker asks the
  kernel for SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``); everywhere, a
  watchdog thread in each worker checks its parent pid every
  :data:`PARENT_CHECK_SECONDS` and exits when the parent is gone.
- **An exception** in the parent (disk full while writing the manifest, a worker's
  fatal error): the workers are terminated as well.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

log = logging.getLogger(__name__)

#: How often a worker's watchdog thread checks that its parent is alive.
PARENT_CHECK_SECONDS = 0.5
#: Linux ``prctl`` option: signal this process when its parent dies.
_PR_SET_PDEATHSIG = 1


class Interrupted(KeyboardInterrupt):
    """The command was interrupted by a signal (``signum``: SIGINT or SIGTERM)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


# ----------------------------------------------------------------------------------------
# worker side
# ----------------------------------------------------------------------------------------
def _set_parent_death_signal(signum: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``signum`` to this process when its parent dies; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int, interval: float) -> None:
    """Exit the process as soon as its parent is no longer ``parent_pid``."""
    import time

    while True:
        if os.getppid() != parent_pid:
            os._exit(1)
        time.sleep(interval)


def _init_worker(parent_pid: int, initializer: Optional[Callable], initargs: tuple) -> None:
    """Every worker's initializer: parent-death guards, SIGINT left to the parent.

    A forked worker inherits the parent's handlers (SIGTERM raising
    :class:`Interrupted`): SIGTERM is reset to its default, so that the parent-death
    signal and :func:`_terminate` end it at once, as they end a spawned one.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before the guard was set
        os._exit(1)
    threading.Thread(
        target=_watch_parent, args=(parent_pid, PARENT_CHECK_SECONDS), daemon=True,
        name="morphlab-parent-watchdog",
    ).start()
    if initializer is not None:
        initializer(*initargs)


# ----------------------------------------------------------------------------------------
# parent side
# ----------------------------------------------------------------------------------------
#: Worker start methods :func:`run_tasks` accepts.
START_METHODS = ("spawn", "fork")


def resolve_start_method(start_method: str) -> str:
    """The start method :func:`run_tasks` uses for ``start_method`` here: ``"fork"``
    only on Linux (macOS forks unsafely with system frameworks loaded), else ``"spawn"``."""
    if start_method == "fork" and sys.platform.startswith("linux") \
            and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return "spawn"


@contextlib.contextmanager
def _on_signals(handler: Any) -> Iterator[None]:
    """SIGINT and SIGTERM go to ``handler`` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


def interruptible() -> contextlib.AbstractContextManager:
    """While the block runs, SIGTERM raises :class:`Interrupted` like Ctrl-C does.

    Only in the main thread (elsewhere signal handlers cannot be set; nothing changes).
    """
    return _on_signals(_raise_interrupted)


def _terminate(pool: cf.ProcessPoolExecutor) -> None:
    """Stop every worker of ``pool`` now (running tasks are abandoned).

    Signals are ignored meanwhile: a second Ctrl-C must not interrupt the clean-up.
    """
    with _on_signals(signal.SIG_IGN):
        _stop_workers(pool)


def _stop_workers(pool: cf.ProcessPoolExecutor) -> None:
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:
        with contextlib.suppress(Exception):
            p.terminate()
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
    pool.shutdown(wait=False, cancel_futures=True)


def run_tasks(
    fn: Callable[[Any], Any],
    tasks: Sequence[Any],
    on_result: Callable[[Any], None],
    *,
    jobs: int = 1,
    initializer: Optional[Callable] = None,
    initargs: tuple = (),
    crash_message: str = "a worker process died",
    start_method: str = "spawn",
) -> None:
    """Run ``fn(task)`` for every task and call ``on_result`` with each result.

    With ``jobs == 1`` (or a single task) everything runs in this process, in order;
    ``initializer`` is then not called (set up the state yourself). Otherwise ``jobs``
    workers run the tasks (each calls ``initializer(*initargs)`` once) and
    ``on_result`` sees the results in completion order, in this process. At most
    ``2 * jobs`` tasks are in flight.

    Args:
        start_method: ``"spawn"`` (default: fresh interpreters) or ``"fork"`` (copies
            of this process: what it loaded is shared; Linux only, see the module
            docstring; elsewhere it falls back to ``"spawn"``).

    Raises:
        Interrupted: Ctrl-C or SIGTERM (the workers are already stopped).
        ChildProcessError: a worker process died (``crash_message`` is the message).
        Exception: whatever ``fn`` (in a worker) or ``on_result`` raised; the workers
            are stopped first.
    """
    with interruptible():
        if jobs <= 1 or len(tasks) <= 1:
            for task in tasks:
                on_result(fn(task))
            return
        if start_method not in START_METHODS:
            raise ValueError(f"start_method must be one of {', '.join(START_METHODS)}, "
                             f"got {start_method!r}")
        method = resolve_start_method(start_method)
        ctx = multiprocessing.get_context(method)
        with _fork_safe_opencv(method == "fork"):
            pool = cf.ProcessPoolExecutor(
                max_workers=min(jobs, len(tasks)), mp_context=ctx, initializer=_init_worker,
                initargs=(os.getpid(), initializer, tuple(initargs)),
            )
            try:
                _drive(pool, fn, iter(tasks), on_result, window=2 * jobs)
            except BrokenProcessPool:
                _terminate(pool)
                raise ChildProcessError(crash_message) from None
            except BaseException:
                _terminate(pool)
                raise
            pool.shutdown(wait=True)


@contextlib.contextmanager
def _fork_safe_opencv(forking: bool) -> Iterator[None]:
    """While workers are forked: OpenCV's thread pool stopped in this process.

    OpenCV's pthreads pool does not survive a fork: a child that reconfigures it
    (``cv2.setNumThreads``) waits forever on a condition variable of the parent's
    threads. With one thread the pool has no threads to inherit; the setting is restored
    when the workers are done.
    """
    cv2 = sys.modules.get("cv2") if forking else None
    if cv2 is None:
        yield
        return
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def _drive(pool: cf.ProcessPoolExecutor, fn: Callable, queue: Iterable, on_result: Callable,
           *, window: int) -> None:
    pending: set = set()
    queue = iter(queue)
    while True:
        while len(pending) < window:
            task = next(queue, _END)
            if task is _END:
                break
            pending.add(pool.submit(fn, task))
        if not pending:
            return
        finished, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        for fut in finished:
            on_result(fut.result())


_END = object()
