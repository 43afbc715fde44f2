"""Ray Data helpers shared by the pipelines: a map stage (tasks for stateless functions, an actor pool for stateful
ones), map-reduce sums, grouped stages, and `run_stages`, the Ray executor of a wit_builder stage list. Logic lives in
wit_builder; these only decide where it runs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

# Actor pools hold their CPUs for the whole stream: if the actors of two stateful stages asked for one CPU each on a
# 2-CPU machine, the read tasks upstream could never be scheduled (a deadlock, seen here). So actors share
# ACTOR_SHARE of the cluster's logical CPUs and stateless tasks ask for TASK_CPUS: every stage can always run.
ACTOR_SHARE = 0.8
TASK_CPUS = 0.2


def actor_cpus(cluster_cpus: int, actors_total: int) -> float:
    """Logical CPUs per actor so that `actors_total` actors take ACTOR_SHARE of the cluster."""
    return max(0.01, round(ACTOR_SHARE * cluster_cpus / max(1, actors_total), 3))


def map_stage(ds, fn: Callable, *, batch_size: int, fn_kwargs: dict | None = None):
    """A stateless per-batch function (pyarrow Table -> Table) as Ray tasks."""
    return ds.map_batches(
        fn,
        batch_format="pyarrow",
        batch_size=batch_size,
        fn_kwargs=fn_kwargs or {},
        zero_copy_batch=True,
        num_cpus=TASK_CPUS,
    )


def actor_stage(
    ds,
    factory: Callable[[], Callable],
    *,
    batch_size: int,
    workers: int,
    num_cpus: float,
    fn_kwargs: dict | None = None,
):
    """A stateful stage: `factory()` runs once per actor (load a model, build an automaton); then each batch goes
    through the object it returned. A fixed pool of `workers` actors."""
    import ray

    return ds.map_batches(
        _Stateful,
        fn_constructor_args=(factory,),
        fn_kwargs=fn_kwargs or {},
        batch_format="pyarrow",
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=num_cpus,
        zero_copy_batch=True,
    )


class _Stateful:
    def __init__(self, factory: Callable[[], Callable]):
        self.fn = factory()

    def __call__(self, batch, **kwargs):
        return self.fn(batch, **kwargs)


def sum_arrays(ds, fn: Callable[[Any], np.ndarray], length: int, *, batch_size: int) -> np.ndarray:
    """Map-reduce: fn(batch) -> int64 array of `length` on the workers; the partial arrays are summed here."""

    def partial(batch):
        return {"part": fn(batch)[None, :]}

    total = np.zeros(length, dtype=np.int64)
    parts = ds.map_batches(
        partial, batch_format="pyarrow", batch_size=batch_size, zero_copy_batch=True, num_cpus=TASK_CPUS
    )
    for batch in parts.iter_batches(batch_format="numpy", batch_size=None):
        total += np.asarray(batch["part"], dtype=np.int64).sum(axis=0)
    return total


def filter_stage(ds, predicate: Callable, *, batch_size: int):
    """Keep the rows where predicate(table) (a boolean array) is true, vectorised."""

    def keep(batch):
        return batch.filter(predicate(batch))

    return ds.map_batches(keep, batch_format="pyarrow", batch_size=batch_size, zero_copy_batch=True, num_cpus=TASK_CPUS)


def grouped_stage(ds, fn: Callable, *, key: Callable, partitions: int):
    """Run fn on whole groups: every row gets a partition number key(table) (numpy ints, the same on every worker),
    rows are sorted into `partitions` groups by it, and fn sees each partition in one call. fn must be correct on any
    table that holds whole groups (it is: dedup by url, cap by query), so one call per partition replaces one call
    per url or per query."""

    def tag(batch):
        import pyarrow as pa

        return batch.append_column("_part", pa.array(np.asarray(key(batch), dtype=np.int64) % partitions))

    def run(batch):
        return fn(batch.drop_columns(["_part"]))

    tagged = ds.map_batches(tag, batch_format="pyarrow", zero_copy_batch=True, num_cpus=TASK_CPUS)
    return tagged.groupby("_part", num_partitions=partitions).map_groups(
        run, batch_format="pyarrow", num_cpus=TASK_CPUS
    )


def shared(value):
    """Put a large read-only value (the query list, the counts) in the object store once; resolve() it in tasks."""
    import ray

    return ray.put(value)


_RESOLVED: dict = {}


def resolve(ref):
    """The value behind an object ref, fetched once per worker process."""
    import ray

    if not isinstance(ref, ray.ObjectRef):
        return ref
    key = ref.hex()
    if key not in _RESOLVED:
        _RESOLVED.clear()
        _RESOLVED[key] = ray.get(ref)
    return _RESOLVED[key]


def with_shared(fn: Callable, **refs):
    """fn(batch, **values) where each value is resolved from its object ref inside the worker."""

    def call(batch):
        return fn(batch, **{name: resolve(ref) for name, ref in refs.items()})

    return call


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


class _HideWitErrors(logging.Filter):
    """Drops Ray Data's error records whose exception is a WitError: the CLI prints that error as one line, so its
    traceback would only bury it (Ray Data's own log files still hold everything)."""

    def filter(self, record: logging.LogRecord) -> bool:
        import sys

        from pipelines.cli import find_wit_error

        # the record's own exception, else the one being handled where it was logged (its preamble line)
        exc = record.exc_info[1] if record.exc_info and record.exc_info is not True else sys.exc_info()[1]
        return exc is None or find_wit_error(exc) is None


def hide_wit_error_traces() -> None:
    """Install _HideWitErrors on the Ray Data loggers that print a failed task's traceback (idempotent)."""
    for name in ("ray.data._internal.execution.streaming_executor_state", "ray.data.exceptions"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _HideWitErrors) for f in logger.filters):
            logger.addFilter(_HideWitErrors())


def run_stages(ds, stages, *, batch_size: int, workers: int, partitions: int):
    """The Ray executor of a stage list (wit_builder.curate.Stage): batch stages as tasks, actor stages as an actor
    pool of `workers`, group stages through a sort shuffle into `partitions`, sum stages as map-reduce. Rows already
    dropped are routed around alive_only stages, as the local executor does. Returns (dataset, sums, timings)."""
    import time

    import pyarrow.compute as pc

    from wit_builder.curate import stages_schema
    from wit_builder.schema import conform

    hide_wit_error_traces()
    share = actor_cpus(cluster_cpus(), 2 * workers)
    values: dict = {}
    timings: dict[str, float] = {}
    dead, empty = None, False
    streamed: list[str] = []
    t0 = time.perf_counter()
    for stage in stages:
        if stage.alive_only and dead is None:
            ds = ds.materialize()
            timings["+".join(["read", *streamed])] = time.perf_counter() - t0
            dead = filter_stage(ds, lambda t: pc.is_valid(t["reason"]), batch_size=batch_size)
            ds = filter_stage(ds, lambda t: pc.is_null(t["reason"]), batch_size=batch_size).materialize()
            empty = ds.count() == 0
        t1 = time.perf_counter()
        fn = with_shared(stage.fn, **{name: shared(values[name]) for name in stage.needs})
        if stage.kind == "sum":
            values[stage.output] = (
                np.zeros(stage.length, np.int64) if empty else sum_arrays(ds, fn, stage.length, batch_size=batch_size)
            )
        elif dead is not None and empty:
            pass  # no alive rows: nothing for this stage to do
        elif stage.kind == "actor":
            ds = actor_stage(ds, stage.fn, batch_size=batch_size, workers=workers, num_cpus=share)
        elif stage.kind == "group":
            ds = grouped_stage(ds, fn, key=stage.key, partitions=partitions)
        else:
            ds = map_stage(ds, fn, batch_size=batch_size)
        if dead is None:
            streamed.append(stage.name)
        else:
            ds = ds.materialize()
            timings[stage.name] = time.perf_counter() - t1
    schema = stages_schema(stages)
    ds = map_stage(ds, lambda t: conform(t, schema), batch_size=batch_size)
    if dead is not None:
        ds = map_stage(dead, lambda t: conform(t, schema), batch_size=batch_size).union(ds)
    return ds.materialize(), values, timings
