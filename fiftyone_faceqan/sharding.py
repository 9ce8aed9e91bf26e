"""One FaceQAN run split into shards for FiftyOne delegated-operation workers (`fiftyone delegated launch`),
on any GPU or machine connected to the same database, in any order.

A shard is a fixed ``_id`` range of the run's target view, computed when it is queued and carried in the
operation's parameters: shard ``i/N`` of the view's ids sorted, from its first id to the next shard's first id
(the first and last shards open-ended), so the shards tile the id space. A shard therefore means the same
samples whenever and wherever it runs, a re-queued shard is the same range, and a sample added to the view
later falls into exactly one shard (new ObjectIds sort last) instead of shifting every boundary as a
split recomputed by each worker would. Progress and completion are read from the stored scores
(runs.run_progress), never from the workers, so nothing is updated by two processes at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from faceqan.shards import check_shard, shard_bounds

from .runs import FaceQANResults, RunProgress, run_progress
from .store import work_left

OPERATOR_URI = "@faceqan/faceqan/compute_face_quality"  # the plugin's operator that runs a queued shard
PARAMS = "context.request_params.params."  # where an operation document keeps the operator's parameters


@dataclass(frozen=True)
class Shard:
    """Shard ``index/count``: the samples with ``start <= _id < stop`` (None: unbounded)."""

    index: int
    count: int
    start: str | None
    stop: str | None

    @property
    def name(self) -> str:
        return f"{self.index}/{self.count}"

    def select(self, samples):
        """The shard's samples of ``samples``: one $match on _id, which the _id index answers."""
        from bson import ObjectId

        bounds = {op: ObjectId(value) for op, value in (("$gte", self.start), ("$lt", self.stop)) if value}
        return samples.mongo([{"$match": {"_id": bounds}}]) if bounds else samples.view()

    @classmethod
    def from_params(cls, params: dict) -> Shard:
        check_shard(params["index"], params["count"])
        return cls(params["index"], params["count"], params.get("start"), params.get("stop"))


def plan_shards(samples, count: int) -> list[Shard]:
    """The non-empty shards of ``count`` over ``samples``, ordered by id (24-digit hex ids sort as ids)."""
    check_split(count)
    ids = sorted(samples.values("id"))
    shards = []
    for index in range(count):
        begin, end = shard_bounds(len(ids), index, count)
        if begin < end:
            shards.append(Shard(index, count, ids[begin] if begin else None, ids[end] if end < len(ids) else None))
    return shards


@dataclass(frozen=True)
class QueuedShards:
    """What ``compute_face_quality(..., shards=N)`` did: shards queued now (with their operation ids), shards
    already finished, shards left to the operations already queued or running, stalled operations marked
    failed (their shards are queued again), and the run's progress when it returned."""

    quality_field: str
    queued: dict[str, str]
    finished: list[str]
    in_progress: list[str]
    presumed_dead: list[str]
    progress: RunProgress


def _operations(dataset, quality_field: str) -> list:
    """The shard operations of run ``quality_field`` on ``dataset`` that are queued or running."""
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    service = DelegatedOperationService()
    return [op for state in (ExecutionRunState.QUEUED, ExecutionRunState.RUNNING)
            for op in service.list_operations(operator=OPERATOR_URI, dataset_id=dataset._doc.id, run_state=state,
                                              **{PARAMS + "quality_field": quality_field,
                                                 PARAMS + "shard": {"$exists": True}})]


def _last_sign_of_life(op) -> datetime:
    """When a running operation last reported progress (the operator reports each scored batch)."""
    reported = getattr(op.status, "updated_at", None) if op.status else None
    return max(t for t in (op.started_at, op.updated_at, reported, op.queued_at) if t is not None)


def check_split(shards, overwrite: bool = False) -> None:
    """A split is a whole number of shards >= 1 and never overwrites: its shards skip what is scored, so a
    re-queued shard finishes a killed worker's shard instead of starting it again."""
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ValueError(f"shards must be a whole number >= 1, got {shards!r}")
    if overwrite:
        raise ValueError("shards cannot be combined with overwrite (shards skip what is scored): delete the run "
                         "first to rescore everything")


def _check_stalled_after(stalled_after) -> None:
    if stalled_after is not None and (isinstance(stalled_after, bool) or not isinstance(stalled_after, (int, float))
                                      or stalled_after < 0):
        raise ValueError(f"stalled_after must be a number of seconds >= 0 or None, got {stalled_after!r}")


def queue_shards(samples, run_config, count: int, request: dict, stalled_after: float | None = None) -> QueuedShards:
    """Register the run on ``samples`` once and queue each unfinished shard of ``count`` that no live
    operation holds, as a delegated operation of the Compute operator with ``request`` (compute_face_quality's
    arguments) and the shard's id range.

    A running operation that reported nothing for ``stalled_after`` seconds is taken as a killed worker's:
    it is marked failed (so it can never be marked completed) and its shard queued again, which finishes
    what the dead worker left. With ``stalled_after=None`` running shards are never taken over, so two
    workers never score one shard at the same time. Everything is checked before anything is written.
    """
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionContext, ExecutionResult, ExecutionRunState

    _check_stalled_after(stalled_after)
    dataset, key = samples._root_dataset, run_config.quality_field
    shards = plan_shards(samples, count)
    live, dead = {}, []
    now = datetime.utcnow()
    for op in _operations(dataset, key):
        params = op.context.request_params["params"]
        if (op.run_state == ExecutionRunState.RUNNING and stalled_after is not None
                and now - _last_sign_of_life(op) >= timedelta(seconds=stalled_after)):
            dead.append(op)
            continue
        shard = Shard.from_params(params["shard"])
        if params.get("fingerprint") != run_config.fingerprint or shard not in shards:
            raise ValueError(f"shard {shard.name} of run {key!r} is queued or running ({op.id}) with other settings "
                             f"or another split; wait for it, or mark it failed (`fiftyone delegated fail {op.id}`)")
        live[shard] = op

    service = DelegatedOperationService()
    for op in dead:
        service.set_failed(op.id, required_state=ExecutionRunState.RUNNING, result=ExecutionResult(
            error=f"no progress for {stalled_after} s: presumed killed; its shard was queued again"))
    method = run_config.build()
    method.register_run(samples, key, overwrite=True, cleanup=False)
    method.save_run_results(samples, key, FaceQANResults(samples, run_config, key, shards=count, backend=method))

    queued, finished = {}, []
    view = None if samples is dataset else samples._serialize()
    for shard in shards:
        if shard in live:
            continue
        # a shard with failures (or, keeping maps, faces without one) is queued again: they are done there
        if not work_left(shard.select(samples), run_config, request["maps"]):
            finished.append(shard.name)
            continue
        context = ExecutionContext(request_params={
            "dataset_name": dataset.name, "dataset_id": str(dataset._doc.id), "view": view, "delegated": True,
            "params": {"quality_field": key, "fingerprint": run_config.fingerprint, "shard": asdict(shard),
                       "request": request}})
        op = service.queue_operation(operator=OPERATOR_URI, context=context,
                                     label=f"FaceQAN {key}: shard {shard.name}", rerunnable=True)
        queued[shard.name] = str(op.id)
    return QueuedShards(key, queued, finished, sorted(s.name for s in live), [str(op.id) for op in dead],
                        run_progress(samples, key))


def shard_request(params: dict) -> dict:
    """A queued shard operation's parameters as compute_face_quality keyword arguments."""
    return {**params["request"], "shard": Shard.from_params(params["shard"])}


def check_shard_run(dataset, quality_field: str, fingerprint: str) -> None:
    """A shard writes only into the run it was queued for: refused when that run was deleted or redone with
    other settings since, or when this worker's model or weights differ from the queuing machine's."""
    runs = dataset.list_brain_runs()
    if quality_field not in runs or dataset.get_brain_info(quality_field).config.fingerprint != fingerprint:
        raise ValueError(f"run {quality_field!r} of dataset {dataset.name!r} is not the run this shard was queued "
                         "for (deleted or rerun with other settings since), or this worker's model weights differ "
                         "from the queuing machine's; queue the shards again")
