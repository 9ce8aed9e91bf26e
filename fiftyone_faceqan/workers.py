"""`faceqan workers`: a whole machine as FiftyOne delegated-operation workers for the shards that
``compute_face_quality(..., shards=N)`` queues: one `fiftyone delegated launch` per visible GPU, each pinned to
its GPU with CUDA_VISIBLE_DEVICES (so ``device="auto"`` is that GPU), and/or N CPU workers with one torch thread
each (CPU stand-ins: a CPU gains nothing from two threads per worker when every core has its worker).

The workers run until stopped: Ctrl+C or SIGTERM is passed on to every worker, and the command exits once all
have, with the first failing worker's exit status. Run it on every machine connected to the same database.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # torch sizes its CPU thread pool from these


def visible_gpus(env: dict) -> list[str]:
    """This process's GPUs as CUDA_VISIBLE_DEVICES names them (their indices when it is unset)."""
    import torch

    count = torch.cuda.device_count()
    listed = env.get("CUDA_VISIBLE_DEVICES")
    names = [name.strip() for name in listed.split(",")] if listed is not None else [str(i) for i in range(count)]
    return names[:count]


def worker_envs(gpus: str | None, cpu: int, visible: list[str], env: dict) -> list[tuple[str, dict]]:
    """(name, environment) of each worker: ``gpus`` is ``all`` or visible GPU indices such as ``0,2`` (the
    default, ``all``, unless only ``cpu`` workers are asked for); ``cpu`` workers see no GPU and use one thread."""
    if isinstance(cpu, bool) or not isinstance(cpu, int) or cpu < 0:
        raise ValueError(f"--cpu must be a number of CPU workers >= 0, got {cpu!r}")
    if gpus is None:
        gpus = "" if cpu else "all"
    if gpus == "all":
        if not visible:
            raise ValueError("no GPU is visible here: use --cpu N for N CPU workers")
        chosen = visible
    else:
        try:
            indices = [int(token) for token in gpus.split(",") if token.strip()]
        except ValueError:
            raise ValueError(f"--gpus must be 'all' or GPU indices such as 0,1, got {gpus!r}") from None
        wrong = [i for i in indices if not 0 <= i < len(visible)]
        if wrong or len(set(indices)) != len(indices):
            raise ValueError(f"--gpus {gpus}: this machine shows {len(visible)} GPU(s) (indices 0 to "
                             f"{len(visible) - 1}), each used once")
        chosen = [visible[i] for i in indices]
    workers = [(f"gpu{name}", {**env, "CUDA_VISIBLE_DEVICES": name}) for name in chosen]
    workers += [(f"cpu{i}", {**env, "CUDA_VISIBLE_DEVICES": "", **ONE_THREAD}) for i in range(cpu)]
    if not workers:
        raise ValueError("no worker asked for: give --gpus or --cpu N")
    return workers


def fiftyone_command() -> str:
    """The `fiftyone` command of this Python environment."""
    beside = Path(sys.executable).with_name("fiftyone")
    found = str(beside) if beside.is_file() else shutil.which("fiftyone")
    if not found:
        raise ValueError("the `fiftyone` command was not found: pip install 'faceqan[fiftyone]'")
    return found


def _stoppable() -> None:
    """In each worker before it starts: SIGINT stops it even when this command was started with SIGINT ignored
    (as `nohup cmd &` does), since Python turns SIGINT into KeyboardInterrupt only if it is not ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_workers(workers: list[tuple[str, dict]], command: list[str]) -> int:
    """Start ``command`` once per worker, pass SIGINT/SIGTERM on to them, and return once all have exited."""
    processes = []
    for name, env in workers:  # own sessions: a terminal's Ctrl+C reaches them once, through us
        processes.append(subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=_stoppable))
        print(f"worker {name}: pid {processes[-1].pid}, CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']!r}",
              flush=True)

    def forward(signum, frame):
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # `fiftyone delegated launch` stops cleanly on SIGINT

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while any(process.poll() is None for process in processes):
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    codes = [process.returncode for process in processes]
    return next((code if code > 0 else 128 - code for code in codes if code), 0)


def main(argv: list[str]) -> int:
    """`faceqan workers ARGS`: found by faceqan's command line through the entry point group faceqan.commands."""
    parser = argparse.ArgumentParser(prog="faceqan workers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", help="'all' (the default without --cpu) or visible GPU indices, e.g. 0,1")
    parser.add_argument("--cpu", type=int, default=0, help="CPU workers with one thread each (default 0)")
    parser.add_argument("--monitor", action="store_true",
                        help="passed to `fiftyone delegated launch`: run each operation in a monitored child process")
    args = parser.parse_args(argv)
    try:
        workers = worker_envs(args.gpus, args.cpu, visible_gpus(os.environ), dict(os.environ))
        command = [fiftyone_command(), "delegated", "launch", *(["--monitor"] if args.monitor else [])]
    except ValueError as exc:
        parser.error(str(exc))
    return run_workers(workers, command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
