"""One FaceQAN run split into shards on the private database: shards tile the target by _id, are queued as
delegated operations of the Compute operator, run by real `fiftyone delegated launch` workers (one killed
mid-shard and its shard queued again), and the run's progress and completion come from the stored scores."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lfw_data import subset_paths

TINY = {"copies": 2, "iterations": 1, "seed": 3}  # SFace with the smallest attack: ~0.1-0.3 s a face on a CPU
PARTS = ("faceqan", "faceqan_mean", "faceqan_std", "faceqan_q_adv", "faceqan_symmetry", "faceqan_error")
FACES = 12  # in 4 shards of 3: worker A is killed after its first chunk (one face), 2 faces before its shard ends
WAIT = 240  # seconds any one wait may take on a loaded 2-core machine before the test fails


def _faces(dataset, count):
    import fiftyone as fo

    dataset.add_samples([fo.Sample(filepath=str(p)) for p in subset_paths(count)])
    dataset.persistent = True  # workers load it by name
    return dataset


def _operations(dataset):
    from fiftyone.operators.delegated import DelegatedOperationService

    return DelegatedOperationService().list_operations(dataset_id=dataset._doc.id)


def _live(dataset) -> list:
    """Ids of the dataset's operations that are queued or running."""
    return [op.id for op in _operations(dataset) if op.run_state in ("queued", "running")]


def _wait(condition, what, processes=(), logs=()):
    """Until ``condition()``; fails with the workers' logs if it takes WAIT seconds or a worker ends."""
    deadline = time.monotonic() + WAIT
    while not condition():
        ended = [process.returncode for process in processes if process.poll() is not None]
        if ended or time.monotonic() > deadline:
            shown = "\n".join(log.read_text()[-3000:] for log in logs)
            pytest.fail(f"{'a worker ended early ' + str(ended) if ended else 'timed out'} waiting for {what}\n{shown}")
        time.sleep(0.1)


def test_shards_tile_the_target_and_queue_once(fo_dataset):
    from fiftyone_faceqan import compute_face_quality, run_progress
    from fiftyone_faceqan.sharding import plan_shards

    _faces(fo_dataset, 7)
    shards = plan_shards(fo_dataset, 3)
    members = [set(s.select(fo_dataset).values("id")) for s in shards]
    assert [len(m) for m in members] == [2, 2, 3]  # faceqan.shards.shard_bounds(7, i, 3)
    assert set.union(*members) == set(fo_dataset.values("id")) and sum(map(len, members)) == 7
    assert shards[0].start is None and shards[-1].stop is None  # the shards tile the whole id space

    queued = compute_face_quality(fo_dataset, shards=3, **TINY)
    assert sorted(queued.queued) == ["0/3", "1/3", "2/3"] and queued.finished == []
    ops = _operations(fo_dataset)
    assert len(ops) == 3 and {op.run_state for op in ops} == {"queued"}
    assert fo_dataset.list_brain_runs() == ["faceqan"]  # one run, registered when queued
    assert run_progress(fo_dataset) == run_progress(fo_dataset, "faceqan")
    assert (run_progress(fo_dataset).total, run_progress(fo_dataset).complete) == (7, False)
    assert not fo_dataset.has_sample_field("faceqan")  # queued, nothing scored

    again = compute_face_quality(fo_dataset, shards=3, **TINY)
    assert again.queued == {} and again.in_progress == ["0/3", "1/3", "2/3"]
    assert len(_operations(fo_dataset)) == 3
    with pytest.raises(ValueError, match="another split"):
        compute_face_quality(fo_dataset, shards=2, **TINY)  # would overlap the queued shards
    with pytest.raises(ValueError, match="with other settings"):
        compute_face_quality(fo_dataset, shards=3, **{**TINY, "seed": 4})
    assert len(_operations(fo_dataset)) == 3


@pytest.mark.parametrize("kwargs, reason", [
    ({"shards": 0}, "shards must be a whole number"),
    ({"shards": 2, "overwrite": True}, "cannot be combined with overwrite"),
    ({"shards": 2, "stalled_after": -1}, "stalled_after"),
    ({"shards": 2, "copies": 1}, "copies must be at least 2"),
])
def test_bad_split_is_refused_before_anything_is_written(fo_dataset, kwargs, reason):
    from fiftyone_faceqan import compute_face_quality

    _faces(fo_dataset, 2)
    with pytest.raises(ValueError, match=reason):
        compute_face_quality(fo_dataset, **kwargs)
    assert fo_dataset.list_brain_runs() == [] and _operations(fo_dataset) == []


def _worker(log: Path, env: dict | None = None):
    """A real `fiftyone delegated launch` with one torch thread, its output in ``log``."""
    from fiftyone_faceqan.workers import ONE_THREAD, fiftyone_command

    env = {**(env or os.environ), **ONE_THREAD, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([fiftyone_command(), "delegated", "launch"], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _ran(log: Path) -> list[str]:
    """The operations a worker started, from its log."""
    return re.findall(r"Running operation ([0-9a-f]{24})", log.read_text())


def _scored_in(dataset, shard) -> int:
    from fiftyone_faceqan import run_field

    dataset.reload()  # the workers declare the fields: refresh the schema
    mark = run_field("faceqan")
    return shard.select(dataset).count(mark) if dataset.has_sample_field(mark) else 0


def _stop(process) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_two_workers_one_killed_every_sample_scored_once(fo_database, fo_dataset, tmp_path):
    """FACES faces in 4 shards, 2 workers; worker A is killed mid-shard and its shard queued again
    (stalled_after): every sample is written exactly once, as the operations' own accounting shows (each reports the faces it wrote
    and those it found already written; the killed worker's writes are what stands in its shard after the
    kill), and the scores equal a single-process run's."""
    import torch
    from bson import ObjectId
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone_faceqan import compute_face_quality, run_progress
    from fiftyone_faceqan.sharding import Shard

    reference = _faces(fo_database.Dataset(f"{fo_dataset.name}-reference"), FACES)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' arithmetic: one thread sums in one order
    try:
        compute_face_quality(reference, progress=False, **TINY)
    finally:
        torch.set_num_threads(threads)
    dataset = _faces(fo_dataset, FACES)
    assert sorted(compute_face_quality(dataset, shards=4, chunk_size=1, **TINY).queued) == ["0/4", "1/4", "2/4", "3/4"]

    logs = tmp_path / "a.log", tmp_path / "b.log"
    a, b = _worker(logs[0]), _worker(logs[1])
    try:
        _wait(lambda: _ran(logs[0]), "worker A to start a shard", [a, b], logs)
        victim = DelegatedOperationService().get(ObjectId(_ran(logs[0])[0]))
        shard = Shard.from_params(victim.context.request_params["params"]["shard"])
        _wait(lambda: _scored_in(dataset, shard) >= 1, "worker A to write a chunk", [a, b], logs)
        os.killpg(a.pid, signal.SIGKILL)
        a.wait()
        written_by_a = _scored_in(dataset, shard)
        assert 1 <= written_by_a < FACES // 4, "the kill did not land mid-shard"

        _wait(lambda: _live(dataset) == [victim.id], "worker B to finish the other shards", [b], [logs[1]])
        assert not run_progress(dataset).complete
        again = compute_face_quality(dataset, shards=4, chunk_size=1, stalled_after=0, **TINY)
        assert list(again.queued) == [shard.name] and again.presumed_dead == [str(victim.id)]
        assert sorted(again.finished) == sorted({"0/4", "1/4", "2/4", "3/4"} - {shard.name})
        _wait(lambda: run_progress(dataset).complete and not _live(dataset), "the re-queued shard", [b], [logs[1]])
    finally:
        for worker in (a, b):
            _stop(worker)

    ops = _operations(dataset)
    states = sorted(op.run_state for op in ops)
    assert states == ["completed"] * 4 + ["failed"]
    done = [op.result.result for op in ops if op.run_state == "completed"]
    assert all(r["scored"] + r["skipped"] == FACES // 4 and r["failed"] == 0 for r in done)
    assert sum(r["scored"] for r in done) + written_by_a == FACES  # no face written twice
    rerun = next(r for r in done if r["skipped"])
    assert (rerun["shard"], rerun["skipped"]) == (shard.name, written_by_a)
    assert set(_ran(logs[1])) >= {str(op.id) for op in ops if op.run_state == "completed"} - {str(victim.id)}
    assert rerun["run_complete"] and rerun["run_total"] == FACES  # the last shard saw the run complete

    assert dataset.list_brain_runs() == ["faceqan"]
    progress = dataset.load_brain_results("faceqan").progress()
    assert (progress.scored, progress.failed, progress.total, progress.complete) == (FACES, 0, FACES, True)
    expected = dict(zip(reference.values("filepath"), zip(*reference.values(list(PARTS)))))
    stored = dict(zip(dataset.values("filepath"), zip(*dataset.values(list(PARTS)))))
    assert stored == expected
    reference.delete()


def test_worker_environments():
    from fiftyone_faceqan.workers import worker_envs

    base = {"PATH": "/bin"}
    gpus = worker_envs(None, 0, ["4", "7"], base)  # CUDA_VISIBLE_DEVICES=4,7 in the caller's environment
    assert [(name, env["CUDA_VISIBLE_DEVICES"]) for name, env in gpus] == [("gpu4", "4"), ("gpu7", "7")]
    assert all(env["PATH"] == "/bin" and "OMP_NUM_THREADS" not in env for _, env in gpus)
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in worker_envs("1", 0, ["4", "7"], base)] == ["7"]
    cpus = worker_envs(None, 2, [], base)
    assert [(name, env["CUDA_VISIBLE_DEVICES"], env["OMP_NUM_THREADS"]) for name, env in cpus] == [
        ("cpu0", "", "1"), ("cpu1", "", "1")]
    assert len(worker_envs("all", 1, ["0"], base)) == 2
    for gpus_arg, cpu, visible, reason in [("all", 0, [], "no GPU is visible"), ("2", 0, ["0", "1"], "shows 2 GPU"),
                                           ("0,0", 0, ["0"], "each used once"), ("x", 0, ["0"], "GPU indices"),
                                           ("", 0, ["0"], "no worker"), (None, -1, [], "--cpu")]:
        with pytest.raises(ValueError, match=reason):
            worker_envs(gpus_arg, cpu, visible, base)


def _children(log: Path) -> dict[str, int]:
    return {name: int(pid) for name, pid in re.findall(r"worker (\w+): pid (\d+)", log.read_text())}


def test_workers_command_runs_cpu_stand_ins_until_stopped(fo_dataset, tmp_path):
    """`faceqan workers --cpu 2`: two real `fiftyone delegated launch` processes with no GPU and one thread,
    which run the queued shards; SIGTERM to the command stops them all and it exits cleanly."""
    from fiftyone_faceqan import compute_face_quality, run_progress

    _faces(fo_dataset, 4)
    compute_face_quality(fo_dataset, shards=2, **TINY)
    log = tmp_path / "workers.log"
    command = subprocess.Popen([sys.executable, "-m", "fiftyone_faceqan.workers", "--cpu", "2"],
                               stdout=log.open("w"), stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        _wait(lambda: len(_children(log)) == 2, "the workers to start", [command], [log])
        for pid in _children(log).values():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            env = dict(item.split(b"=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if item)
            assert cmdline[-3:-1] == [b"delegated", b"launch"]
            assert (env[b"CUDA_VISIBLE_DEVICES"], env[b"OMP_NUM_THREADS"]) == (b"", b"1")
        _wait(lambda: run_progress(fo_dataset).complete and not _live(fo_dataset), "the shards", [command], [log])
    finally:
        command.send_signal(signal.SIGTERM)
        assert command.wait(timeout=60) == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in _children(log).values())
    assert sorted(op.run_state for op in _operations(fo_dataset)) == ["completed", "completed"]


def test_a_failed_image_is_recorded_and_its_shard_retried(fo_dataset, tmp_path):
    import fiftyone as fo
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone_faceqan import compute_face_quality, run_progress

    fo_dataset.add_samples([fo.Sample(filepath=str(p)) for p in subset_paths(2)])
    fo_dataset.add_sample(fo.Sample(filepath=str(tmp_path / "missing.jpg")))  # the last id: shard 2/3
    fo_dataset.persistent = True
    compute_face_quality(fo_dataset, shards=3, **TINY)
    ran = DelegatedOperationService().execute_queued_operations(dataset_name=fo_dataset.name)
    assert sorted((r.result["shard"], r.result["scored"], r.result["failed"]) for r in ran) == [
        ("0/3", 1, 0), ("1/3", 1, 0), ("2/3", 0, 1)]
    progress = run_progress(fo_dataset)
    assert (progress.scored, progress.failed, progress.complete) == (2, 1, True)
    again = compute_face_quality(fo_dataset, shards=3, **TINY)
    assert list(again.queued) == ["2/3"] and sorted(again.finished) == ["0/3", "1/3"]
