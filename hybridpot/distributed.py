"""Passes over a data set in batches, in this process or as Dask tasks (``[fit] cluster``).

Every pass over the data (baseline predictions, the design matrix, predictions and errors, the descriptors of the
uncertainty data and of active-learning candidates) goes through this module:

* :func:`map_batches`: ``keep(item, task(shared, inputs(item)))`` for every batch, one after the other in this
  process (``cluster`` None) or as one Dask task per batch (a pure map: results that do not depend on the number of
  workers);
* :func:`map_reduce`: the same on a cluster, with each task's small partial result (QR factors) reduced pairwise by a
  tree fixed by the batch indices (the design-matrix pass; :mod:`hybridpot.fitting.assembly`).

Both paths run the same per-batch code on the same inputs: ``shared`` (what every batch needs and is small: the
potential, the pass's settings, the data set's row counts that normalise the weights) and a batch's own inputs, which
``inputs`` builds in this process when the batch is about to run (its structures, their labels and baseline
predictions). On a cluster, ``shared`` is scattered to every worker once per pass and each batch's own inputs to the one
worker that runs it, which drops them when the task has run; no more than :data:`IN_FLIGHT_PER_THREAD` batches per
worker thread are out at a time. A worker therefore holds the shared inputs, a few batches' inputs and one batch's
working memory, whatever the size of the data set. The scheduler relays the scattered inputs and keeps none of them
(the tasks' arguments are futures, not data), and never imports hybridpot (the tasks' functions travel pickled:
:func:`_call`). Results come back one batch at a time, and the design-matrix pass's factors (K x K-sized) are reduced
on the workers.

``cluster`` is ``"local:N"`` (N single-threaded worker processes on this machine), a scheduler address
(``tcp://host:8786``), or an open :class:`Cluster`, which the passes of one job share (a local cluster costs seconds
to start: its workers import torch).

Determinism: the reduction tree depends only on the number of batches, never on the number of workers or the order
tasks finish in, so the same configuration gives the same model bit for bit on 1, 2 or 30 workers (and equals the
single-process fit, which folds the batches one after the other, to round-off); a map gives each batch the same
computation wherever it runs. A task that fails is retried up to :data:`RETRIES` times. A worker that dies mid-pass
takes with it inputs that exist nowhere else (the batches sent to it; results that could only be recomputed from inputs
already dropped): the pass is then sent again, at most :data:`RETRIES` times, a map pass only for the batches not kept
yet, the design-matrix pass whole (its tree is the same, and so is the answer). A scheduler that cannot be reached is
an error that says where it looked.

``dask[distributed]`` is an optional dependency (``pip install "hybridpot[dask]"``), imported only here and only when a
cluster is asked for. On a SLURM or PBS machine, start a scheduler with dask-jobqueue (README, Distributed fitting) and
give its address. Layer 0 (README, Architecture): every layer that runs a pass imports it.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import operator
import pickle
import time
import uuid
from typing import Any, Callable, Iterator, Sequence, Union

from tqdm.auto import tqdm

from hybridpot.errors import ConfigError, HybridpotError

log = logging.getLogger(__name__)

#: how many times a failed task is retried, and a pass whose inputs were lost with a worker is sent again
RETRIES = 3
#: seconds to wait for a remote scheduler
CONNECT_TIMEOUT = 20
#: Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_ set; glibc then stops raising its mmap threshold, so every
#: large array of a batch is mapped and unmapped afresh, and a design-matrix batch spent as long in the kernel as in
#: its own code (twice the time of one process). Local clusters start their workers without it (None unsets it).
NANNY_MALLOC_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
#: tasks of a pass sent to the cluster and not yet finished, per worker thread: one running and one whose inputs are
#: already there when it ends; a worker holds the inputs of these batches only
IN_FLIGHT_PER_THREAD = 2


def check_cluster(cluster: Any) -> str:
    """``cluster`` if it is ``"local:N"`` (N >= 1) or a scheduler address (``tcp://host:port``, ``tls://...``).

    Raises:
        ConfigError: anything else.
    """
    if isinstance(cluster, str) and cluster.startswith("local:"):
        n = cluster[len("local:"):]
        if n.isdigit() and int(n) >= 1:
            return cluster
    elif isinstance(cluster, str) and "://" in cluster and cluster.split("://", 1)[1]:
        return cluster
    raise ConfigError(f"cluster = {cluster!r}: expected 'local:N' (N worker processes on this machine, N >= 1) or a Dask "
                      "scheduler address such as 'tcp://host:8786' ([fit] cluster, hybridpot eval --cluster)")


@contextlib.contextmanager
def client_for(cluster: str) -> Iterator[Any]:
    """A Dask client of ``cluster`` (a new local cluster of N single-threaded worker processes for ``"local:N"``)."""
    check_cluster(cluster)
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ConfigError(f"cluster = {cluster!r} needs Dask: pip install \"hybridpot[dask]\" ({exc})") from exc
    if cluster.startswith("local:"):
        import dask

        with contextlib.ExitStack() as stack:
            with dask.config.set({NANNY_MALLOC_TRIM: None}):  # read once, when the nannies are made
                local = stack.enter_context(LocalCluster(n_workers=int(cluster[len("local:"):]), threads_per_worker=1,
                                                         processes=True, dashboard_address=None))
            yield stack.enter_context(Client(local))
        return
    try:
        client = Client(cluster, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise HybridpotError(f"cannot reach the Dask scheduler at {cluster} within {CONNECT_TIMEOUT} s ({type(exc).__name__}: "
                             f"{exc}); start it (dask scheduler / dask-jobqueue) or fix [fit] cluster") from exc
    with client:
        yield client


class Cluster:
    """An open connection to a Dask cluster that the passes of one job share, and the record of the passes run on it.

    Use as a context manager (``with Cluster("local:2") as cluster: ...``): entering starts the local cluster or
    connects to the scheduler, leaving closes them. Pass the open object as ``cluster`` to any pass.

    Attributes:
        spec: ``"local:N"`` or the scheduler address.
        passes: one entry per pass run on it, in order: {"pass": its name, "batches": tasks, "workers": workers when it
            started, "seconds": wall time}.
    """

    def __init__(self, spec: str) -> None:
        self.spec = check_cluster(spec)
        self.passes: list[dict[str, Any]] = []
        self._client: Any = None
        self._stack: contextlib.ExitStack | None = None
        self._bar: tqdm | None = None

    def progress_bar(self, n: int, desc: str, progress: bool = True) -> tqdm:
        """The one progress bar of every pass run on this cluster while it is open (a job's whole fit), its total grown
        by the pass's ``n`` batches and its label set to the pass's ``desc``; advanced as the workers' results come back.
        A disabled bar of its own without ``progress``."""
        if not progress:
            return tqdm(total=n, disable=True)
        if self._bar is None:
            self._bar = tqdm(total=0, unit="batch", leave=False)
        self._bar.total += n
        self._bar.set_description(f"Dask {self.spec}: {desc}")
        self._bar.refresh()
        return self._bar

    def __enter__(self) -> "Cluster":
        self._stack = contextlib.ExitStack()
        self._client = self._stack.enter_context(client_for(self.spec))
        return self

    def __exit__(self, *exc: Any) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if stack is not None:
            stack.close()

    @property
    def client(self) -> Any:
        """The ``distributed.Client``.

        Raises:
            HybridpotError: the cluster is not open.
        """
        if self._client is None:
            raise HybridpotError(f"the Dask cluster {self.spec} is not open: use it as `with Cluster({self.spec!r}) as cluster:`")
        return self._client

    @property
    def n_workers(self) -> int:
        """Workers connected now."""
        return len(self.client.nthreads())

    def record(self) -> dict[str, Any]:
        """For report.json: {"cluster": spec, "workers": connected now, "passes": :attr:`passes`}."""
        return {"cluster": self.spec, "workers": self.n_workers, "passes": list(self.passes)}


#: what a pass's ``cluster`` argument takes: None (this process), a spec (``"local:N"``, an address) or an open :class:`Cluster`
ClusterArg = Union[str, Cluster, None]


@contextlib.contextmanager
def connect(cluster: ClusterArg) -> Iterator[Cluster | None]:
    """An open :class:`Cluster` for ``cluster``: the same object when it is one already (left open), a new one for a
    spec (closed on leaving: a job with several passes should open one and pass it), None for None."""
    if cluster is None or isinstance(cluster, Cluster):
        yield cluster
        return
    with Cluster(cluster) as opened:
        yield opened


def map_batches(task: Callable[[Any, Any], Any], shared: Any, items: Sequence[Any], inputs: Callable[[Any], Any],
                keep: Callable[[Any, Any], None], cluster: ClusterArg = None, progress: bool = True, desc: str = "batches") -> None:
    """``keep(item, task(shared, inputs(item)))`` for every item: a pure map, with one progress bar over the items.

    Args:
        task: a picklable function (module level) of the shared inputs and one item's own inputs.
        shared: the small inputs every task needs (the potential, settings): sent to each worker once per pass on a
            cluster.
        items: one task each: small keys that stay in this process (e.g. a batch's structure indices).
        inputs: an item's own inputs (its structures, their labels), built in this process when its task is about to
            run; on a cluster they are sent to the one worker that runs it.
        keep: called in this process once per item with its result; in item order without a cluster, in the order the
            tasks finish with one (so it must place each result by its item, not append).
        cluster: None: one item after the other in this process; else one Dask task per item (:func:`map_reduce`
            without a reduction), the same computation per item, so the results do not depend on the workers.
    """
    if cluster is None:
        for item in tqdm(items, desc=desc, unit="batch", disable=not progress, leave=False):
            keep(item, task(shared, inputs(item)))
        return
    map_reduce(cluster, functools.partial(_side_only, task), shared, items, inputs, None, keep, progress, desc)


def _side_only(task: Callable[[Any, Any], Any], shared: Any, own: Any) -> tuple[None, Any]:
    """``task``'s result as the side result of a :func:`map_reduce` task with nothing to reduce."""
    return None, task(shared, own)


def map_reduce(cluster: str | Cluster, task: Callable[[Any, Any], tuple[Any, Any]], shared: Any, items: Sequence[Any],
               inputs: Callable[[Any], Any], reduce: Callable[[Any, Any], Any] | None, keep: Callable[[Any, Any], None],
               progress: bool = True, desc: str = "batches") -> Any:
    """``reduce`` over ``task(shared, inputs(item))[0]`` for every item, by a fixed pairwise tree;
    ``keep(item, task(...)[1])``.

    What reaches the workers: ``shared`` is scattered to every worker once per pass; each item's own inputs are built
    here only when its task is sent, and scattered to one worker, which drops them once the task has run: the worker
    whose batch just ended (each worker thread has :data:`IN_FLIGHT_PER_THREAD` slots), so that no worker waits while
    another has batches queued. At most
    :data:`IN_FLIGHT_PER_THREAD` tasks per worker thread are sent and not yet finished, so a worker holds the shared
    inputs, a few batches' inputs and the results not yet collected or reduced, whatever the size of the data set; the
    scheduler only relays the scattered inputs.

    Dask recomputes a lost task but cannot recompute scattered data: when a worker dies holding inputs that a task
    still needs (a batch's, or the last copy of the shared inputs), or results that can only be recomputed from
    inputs already dropped, the pass is started again with the inputs sent anew, at most :data:`RETRIES` times; items
    already kept are not kept again, and the tree is the same, so the answer is too.

    Args:
        cluster: ``"local:N"``, a scheduler address or an open :class:`Cluster` (:func:`connect`); the pass is
            recorded in the cluster's :attr:`Cluster.passes`.
        task: a picklable function (module level) of the shared inputs and one item's own inputs -> (partial result,
            side result).
        shared: the small inputs every task needs, sent to each worker once per pass.
        items: one task each (e.g. the structure indices of a batch); they stay in this process.
        inputs: an item's own inputs, built in this process when its task is sent (a batch's structures and labels).
        reduce: (partial, partial) -> partial, run on the workers; the tree pairs items (0, 1), (2, 3), ...,
            then the results in the same way, so it depends only on ``len(items)``. None: nothing to reduce (a map,
            :func:`map_batches`).
        keep: called in this process once with each item and its side result, as the tasks finish (any order).
        progress: show progress: on an open :class:`Cluster` one bar for all its passes (:meth:`Cluster.progress_bar`:
            a fit job's whole fit), advanced as the workers' results come back.

    Returns:
        The reduced partial results (None for no items or no ``reduce``).

    Raises:
        HybridpotError: inputs were lost more than :data:`RETRIES` times.
    """
    if not items:
        return None
    from distributed.client import FutureCancelledError

    kept: set[int] = set()
    with connect(cluster) as opened:
        bar = opened.progress_bar(len(items), desc, progress)  # one bar for all the passes on an open cluster
        client = opened.client
        record = {"pass": desc, "batches": len(items), "workers": opened.n_workers}
        t0 = time.perf_counter()
        for attempt in range(RETRIES + 1):
            try:
                result = _one_pass(client, task, shared, items, inputs, reduce, keep, kept, bar)
                opened.passes.append(record | {"seconds": time.perf_counter() - t0})
                return result
            except (FutureCancelledError, _InputsLost) as exc:
                if attempt == RETRIES:
                    raise HybridpotError(f"the Dask pass '{desc}' lost its inputs {RETRIES + 1} times ({exc}); workers keep "
                                         "dying: check their memory limits and logs") from exc
                log.warning("a Dask worker died with the inputs of pass '%s' (%s); sending them again and recomputing the "
                            "pass (%d of %d batches already kept)", desc, exc, len(kept), len(items))


class _InputsLost(Exception):
    """Sending a pass's inputs failed: the worker they were going to died (Dask's scatter does not try another)."""


def _scatter(client: Any, value: Any, worker: str | None = None) -> Any:
    """``value`` scattered as one future: to the worker ``worker`` (an address), or to every worker (None).

    Raises:
        _InputsLost: the worker is gone, or the connection to it closed (it died while receiving them).
    """
    try:
        [future] = client.scatter([value], workers=None if worker is None else [worker], broadcast=worker is None, hash=False)
    except (OSError, KeyError) as exc:  # distributed's CommClosedError, a refused connection; a worker the scheduler no longer has
        raise _InputsLost(f"sending inputs to a worker failed: {type(exc).__name__}: {exc}") from exc
    return future


def _call(function: bytes, *args: Any) -> Any:
    """``function`` (pickled) applied to ``args``, on a worker.

    Every task of a pass runs this with its function pickled: the scheduler unpickles the graph it is sent, and a
    function of hybridpot's there would make it import hybridpot, torch and ase (200 MiB, measured) only to pass the
    function on; this module imports none of them.
    """
    return pickle.loads(function)(*args)


class _Tree:
    """The reduction tree of :func:`map_reduce` over ``n`` leaves, submitted as the leaves arrive (in order).

    Leaves (0, 1), (2, 3), ... are reduced, then their results in the same way, an odd last node going up unchanged:
    the tree depends on ``n`` only. Each reduction is submitted once both of its inputs have been.
    """

    def __init__(self, client: Any, reduce: bytes, n: int, token: str) -> None:
        self.client, self.reduce, self.token = client, reduce, token  # reduce: the pickled function (:func:`_call`)
        self.sizes = [n]  # nodes per level, leaves first
        while self.sizes[-1] > 1:
            self.sizes.append((self.sizes[-1] + 1) // 2)
        self.waiting: dict[int, Any] = {}  # level -> its last left node, waiting for its right neighbour
        self.root: Any = None

    def add(self, k: int, node: Any) -> None:
        """Leaf ``k`` (a future); leaves must come in order 0, 1, 2, ..."""
        depth = 0
        while depth < len(self.sizes) - 1:
            if k % 2 == 0 and k + 1 < self.sizes[depth]:
                self.waiting[depth] = node
                return
            if k % 2 == 1:
                node = self.client.submit(_call, self.reduce, self.waiting.pop(depth), node,
                                          key=f"hybridpot-reduce-{self.token}-{depth + 1}-{k - 1}", retries=RETRIES)
            k, depth = k // 2, depth + 1
        self.root = node


def _one_pass(client: Any, task: Callable[[Any, Any], tuple[Any, Any]], shared: Any, items: Sequence[Any],
              inputs: Callable[[Any], Any], reduce: Callable[[Any, Any], Any] | None, keep: Callable[[Any, Any], None],
              kept: set[int], bar: tqdm) -> Any:
    """One attempt of :func:`map_reduce` on ``client``; adds to ``kept`` the indices of the items it kept."""
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    shared_future = _scatter(client, shared)
    # each worker thread has IN_FLIGHT_PER_THREAD slots; a batch that ends frees its slot for the next batch, on the same
    # worker: every worker is kept busy as long as there are batches (Dask's round robin would not follow who is free)
    nthreads = client.nthreads()
    slots = [w for w in sorted(nthreads) for _ in range(IN_FLIGHT_PER_THREAD * nthreads[w])]
    tree = _Tree(client, pickle.dumps(reduce), len(items), token) if reduce is not None else None
    run = pickle.dumps(task)
    # a reduction needs every task again after a lost pass; a map only those not kept yet
    todo = iter([i for i in range(len(items)) if reduce is not None or i not in kept])
    watched: dict[Any, tuple[int, str]] = {}  # the future whose end frees a slot -> its item and worker
    finished = as_completed()

    def send(i: int, worker: str) -> None:
        own = _scatter(client, inputs(items[i]), worker)  # held on its worker until the task has run (no reference kept here)
        out = client.submit(_call, run, shared_future, own, key=f"hybridpot-task-{token}-{i}", retries=RETRIES, pure=False,
                            workers=[worker], allow_other_workers=True)
        # only the getters are held: a task's whole result is freed on its worker once both have run
        if tree is not None:
            partial = client.submit(operator.itemgetter(0), out, key=f"hybridpot-partial-{token}-{i}", retries=RETRIES)
            tree.add(i, partial)
        watch = partial if i in kept else client.submit(operator.itemgetter(1), out, key=f"hybridpot-side-{token}-{i}",
                                                        retries=RETRIES)
        watched[watch] = (i, worker)
        finished.add(watch)

    for worker, i in zip(slots, todo):
        send(i, worker)
    for future in finished:
        i, worker = watched.pop(future)
        if i not in kept:
            keep(items[i], future.result())
            future.release()
            kept.add(i)
            bar.update(1)
        for j in itertools.islice(todo, 1):
            send(j, worker)
    return tree.root.result() if tree is not None else None
