"""Where a command's work runs: in this process, or on Dask workers.

One setting, `--scheduler` with `--workers` on `cohort extract`, `cohorts extract`, `featurize`
and `run` (suite keys `scheduler:` and `workers:`):

- `none` (the default): in this process, one task after the other;
- `local`: a `dask.distributed` LocalCluster of N single-threaded worker processes here
  (`--workers N`, default one per core);
- an address such as `tcp://host:8786`: the scheduler of a cluster the user started (by hand,
  or with `dask-jobqueue` on SLURM or PBS: docs/cluster.md).

Work is cut into tasks (one shard, one shard batch, one run) and goes through an `Executor`,
whatever the scheduler: `results` submits calls a few per worker ahead, yields each result as it
completes (or in submission order), and the caller merges them, so every scheduler gives the same
outputs. A task whose worker is lost is run once more (the scheduler's `allowed-failures`, set
to 1 for a local cluster; a cluster at an address keeps its own setting); lost again, it comes
back as a `Done` with `lost` set, never half done. The executor in use is set by
`use_scheduler` around a command, and code deep inside a stage asks `current_executor()`.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ehrbench.errors import EhrbenchError
from ehrbench.interrupts import ctrl_c_ignored, raise_if_stopping

logger = logging.getLogger(__name__)

NONE, LOCAL = "none", "local"
ADDRESS = re.compile(r"^[a-z]+://[^\s/]+:\d+$")
ADDRESS_EXAMPLE = "tcp://host:8786"
# Tasks submitted ahead per worker: one running and one ready to start.
AHEAD_PER_WORKER = 2
# How long to keep trying to reach a scheduler at an address.
CONNECT_TIMEOUT = "10s"


@dataclass(frozen=True)
class SchedulerSetting:
    """Where to run: `address` is `none`, `local` or a scheduler address; `workers` the size
    of a local cluster (None: one per core)."""

    address: str = NONE
    workers: int | None = None


def check_address(value: Any) -> str:
    """`value` as a scheduler setting, or ValueError saying what is expected.

    >>> check_address("local"), check_address("tcp://10.0.0.5:8786")
    ('local', 'tcp://10.0.0.5:8786')
    """
    if isinstance(value, str) and (value in (NONE, LOCAL) or ADDRESS.match(value)):
        return value
    raise ValueError(
        f"must be none, local or a Dask scheduler address such as {ADDRESS_EXAMPLE}, got {value!r}"
    )


def check_workers(value: Any, address: str) -> int | None:
    """`value` as a number of local workers (None: not set), or ValueError.

    >>> check_workers("2", "local"), check_workers(None, "none")
    (2, None)
    """
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a whole number >= 1, got {value!r}")
    if address != LOCAL:
        raise ValueError(
            f"sizes a local cluster and needs scheduler local (scheduler is {address}; a "
            "cluster at an address has the workers it was started with)"
        )
    return value


def local_workers(asked: int | None) -> int:
    """How many worker processes a local cluster starts: as many as asked (default: one per
    core), at most 4 per core of this machine (more only compete for the same cores, and
    100,000 of them would stall it), with a warning when that cuts the number asked; a suite
    written on a larger machine still runs here."""
    cores = os.cpu_count() or 1
    if asked is None:
        return cores
    if asked > 4 * cores:
        logger.warning(
            "--workers %d: this machine has %d core(s); starting %d workers (4 per core)",
            asked,
            cores,
            4 * cores,
        )
        return 4 * cores
    return asked


def add_scheduler_options(parser) -> None:
    """Add `--scheduler` and `--workers` to a command's argparse parser."""
    parser.add_argument(
        "--scheduler",
        default=None,
        help=f"where the work runs: none (this process, the default), local (a Dask cluster "
        f"on this machine) or a Dask scheduler address ({ADDRESS_EXAMPLE})",
    )
    parser.add_argument(
        "--workers", default=None, help="worker processes of --scheduler local (default: cores)"
    )


def scheduler_from_args(args) -> SchedulerSetting:
    """The setting of `--scheduler` and `--workers`; raises `EhrbenchError` naming the option
    and what is expected.

    >>> import argparse
    >>> scheduler_from_args(argparse.Namespace(scheduler="local", workers="2"))
    SchedulerSetting(address='local', workers=2)
    """

    def fail(key: str, message: str) -> NoReturn:
        raise EhrbenchError(f"--{key} {message}")

    address = NONE if args.scheduler is None else args.scheduler
    return checked_setting(address, args.workers, fail)


def checked_setting(
    address: Any, workers: Any, fail: Callable[[str, str], NoReturn]
) -> SchedulerSetting:
    """`address` and `workers` checked into a setting; the first that is wrong goes to
    `fail(key, message)` (key `scheduler` or `workers`, message what is expected), which raises.

    >>> def fail(key, message):
    ...     raise ValueError(f"{key}: {message}")
    >>> checked_setting("local", 0, fail)
    Traceback (most recent call last):
    ValueError: workers: must be a whole number >= 1, got 0.
    """
    try:
        address = check_address(address)
    except ValueError as exc:
        fail("scheduler", f"{exc}.")
    try:
        workers = check_workers(workers, address)
    except ValueError as exc:
        fail("workers", f"{exc}.")
    return SchedulerSetting(address, workers)


@dataclass(frozen=True)
class Call:
    """One task: `fn(*args)`, with `tag` (what the caller needs to file its result)."""

    fn: Callable[..., Any]
    args: tuple = ()
    tag: Any = None


@dataclass
class Done:
    """A finished call: its value, or why it never finished (`lost`: its worker was lost on
    both attempts)."""

    call: Call
    value: Any = None
    lost: str | None = None


class Executor(ABC):
    """Runs calls and hands back their results; see the module docstring."""

    @property
    @abstractmethod
    def workers(self) -> int:
        """How many tasks run at once."""

    @abstractmethod
    def hold(self, value: Any) -> Any:
        """`value` placed where the tasks run, once: pass the handle in calls' args."""

    @abstractmethod
    def results(self, calls: Iterable[Call], *, ordered: bool = False) -> Iterator[Done]:
        """Run `calls` (consumed lazily) and yield each one's `Done` as it completes, or in
        the calls' order when `ordered`. A call's own exception is raised here, as it is."""

    def load(self) -> str | None:
        """What a progress bar shows of the workers (None in process)."""
        return None

    def ordered_values(self, calls: Iterable[Call]) -> Iterator[Any]:
        """The values of `calls` in order; a call whose worker was lost twice raises."""
        for done in self.results(calls, ordered=True):
            if done.lost is not None:
                raise EhrbenchError(f"a task ({done.call.tag}) was lost twice: {done.lost}")
            yield done.value


class InProcess(Executor):
    """Each call run here, when its result is asked for: one at a time, in order."""

    @property
    def workers(self) -> int:
        return 1

    def hold(self, value: Any) -> Any:
        return value

    def results(self, calls: Iterable[Call], *, ordered: bool = False) -> Iterator[Done]:
        for call in calls:
            yield Done(call, call.fn(*call.args))


@dataclass
class DaskExecutor(Executor):
    """Calls as `dask.distributed` tasks of `client`, a few per worker ahead."""

    client: Any
    in_flight: int = field(default=0, repr=False)
    _workers: int = field(default=0, repr=False)

    @property
    def workers(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def hold(self, value: Any) -> Any:
        # A task holding the value (not `scatter`): if every worker holding it is lost, the
        # scheduler computes it again from the task.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ll]arge object.*")
            return self.client.submit(_same, value, pure=False)

    def load(self) -> str:
        workers = f"{self._workers} worker{'s' if self._workers != 1 else ''}"
        return f"{workers}, {self.in_flight} in flight"

    def results(self, calls: Iterable[Call], *, ordered: bool = False) -> Iterator[Done]:
        from dask.distributed import as_completed

        numbered = enumerate(calls)
        flying: dict[Any, tuple[int, Call]] = {}
        finished = as_completed()
        ready: dict[int, Done] = {}
        next_number = 0

        def launch(count: int) -> None:
            for number, call in itertools.islice(numbered, count):
                future = self.client.submit(call.fn, *call.args, pure=False)
                flying[future] = (number, call)
                finished.add(future)
                self.in_flight += 1

        self._workers = self.workers
        launch(AHEAD_PER_WORKER * self._workers)
        try:
            for future in finished:
                number, call = flying.pop(future)
                self.in_flight -= 1
                done = _done(future, call)
                launch(1)
                if not ordered:
                    yield done
                    continue
                ready[number] = done
                while next_number in ready:
                    yield ready.pop(next_number)
                    next_number += 1
        finally:
            self.client.cancel(list(flying))
            # Counted over every `results` under way (a run's features are built inside one).
            self.in_flight -= len(flying)


def _done(future: Any, call: Call) -> Done:
    """The call's `Done`; its own error is raised. The scheduler has already run a task whose
    worker was lost once more (`allowed-failures`), so a loss here is final."""
    try:
        return Done(call, future.result())
    except Exception as exc:
        raise_if_stopping(exc)  # a worker lost to the stop signal of the whole process group
        if not _lost(exc):
            raise
        logger.warning("%s: its worker was lost (%s)", call.tag, type(exc).__name__)
        return Done(call, lost=f"{type(exc).__name__}: {exc}")


def _same(value: Any) -> Any:
    return value


def _lost(exc: BaseException) -> bool:
    """Whether `exc` says the task's worker (or its connection) was lost, not that it failed."""
    from concurrent.futures import CancelledError

    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    return isinstance(exc, KilledWorker | CancelledError | CommClosedError)


_CURRENT: contextvars.ContextVar[Executor | None] = contextvars.ContextVar(
    "ehrbench_executor", default=None
)


def current_executor() -> Executor:
    """The executor of the command being run (in process unless `use_scheduler` set one)."""
    return _CURRENT.get() or InProcess()


@contextmanager
def use_scheduler(setting: SchedulerSetting) -> Iterator[Executor]:
    """Run the block's work on `setting`'s scheduler: start (or connect to) it, make it
    `current_executor()`, and stop it (or disconnect) after.

    >>> with use_scheduler(SchedulerSetting()) as executor:
    ...     [done.value for done in executor.results([Call(len, ("abc",))])]
    [3]
    """
    if setting.address == NONE:
        yield from _current(InProcess())
        return
    client, cluster = _connect(setting)
    try:
        yield from _current(DaskExecutor(client))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _current(executor: Executor) -> Iterator[Executor]:
    token = _CURRENT.set(executor)
    try:
        yield executor
    finally:
        _CURRENT.reset(token)


def _connect(setting: SchedulerSetting) -> tuple[Any, Any]:
    """A client of a new local cluster, or of the scheduler at the setting's address."""
    import dask
    from dask.distributed import Client, LocalCluster

    if setting.address == LOCAL:
        workers = local_workers(setting.workers)
        # A task whose worker is lost is run once more, then given up (`Done.lost`); a worker
        # is given one task at a time, so a lost worker costs no task it had not started.
        placement = {
            "distributed.scheduler.allowed-failures": 1,
            "distributed.scheduler.worker-saturation": 1.0,
        }
        # The worker processes start ignoring Ctrl-C: a terminal sends it to the whole process
        # group, and each worker would print a traceback, while this process handles it,
        # closing the cluster. A Ctrl-C in the second the cluster starts is ignored here too:
        # pressed again, it stops the command. (A worker a nanny restarts after a loss starts
        # later, with Ctrl-C as usual.)
        with ctrl_c_ignored(), dask.config.set(placement):
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: several clusters may run here
                silence_logs=logging.CRITICAL,  # ehrbench says what matters
            )
        logger.info("scheduler: a local Dask cluster of %d worker(s)", workers)
        return Client(cluster), cluster
    try:
        client = Client(setting.address, timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise EhrbenchError(
            f"--scheduler {setting.address}: no Dask scheduler answers there ({exc}); start one "
            "(`dask scheduler`, or a dask-jobqueue cluster: docs/cluster.md) or use local."
        ) from None
    logger.info("scheduler: %s with %d worker(s)", setting.address, len(client.nthreads()))
    return client, None
