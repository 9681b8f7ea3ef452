"""Multi-worker training on one machine or many: TF_CONFIG, the chief, and a local launcher.

tf.distribute's MultiWorkerMirroredStrategy reads the cluster from the TF_CONFIG environment
variable of each worker process: every worker lists all addresses and its own index. On several
machines the user (or their scheduler) sets it; `local_tf_configs` writes it for N workers on
loopback ports, and `launch_local_workers` (`fcnedge train --local-workers N`) starts them, to
try multi-worker training on one machine. Worker 0 is the chief: it alone writes the run folder;
the others checkpoint into temporary folders (as tf.distribute requires every worker to save).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.quiet import child_stderr

log = logging.getLogger("fcnedge.train")


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports the OS says are free now (bound together, so they are distinct)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def local_tf_configs(num_workers: int, ports: list[int] | None = None) -> list[dict]:
    """TF_CONFIG for each of N workers on 127.0.0.1 (worker 0 is the chief)."""
    if num_workers < 1:
        raise InputError(f"got {num_workers}, expected at least 1", "local_workers")
    ports = ports or free_ports(num_workers)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports[:num_workers]]}
    return [{"cluster": cluster, "task": {"type": "worker", "index": index}}
            for index in range(num_workers)]


def task_from_env(environ=os.environ) -> tuple[str, int] | None:
    """(task type, index) from TF_CONFIG, or None when unset; InputError when malformed."""
    text = environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        task = json.loads(text)["task"]
        return str(task["type"]), int(task["index"])
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"TF_CONFIG: expected JSON with cluster and task.type/task.index "
                         f"({err})") from err


def is_chief_task(environ=os.environ) -> bool:
    """Whether this process is the chief per TF_CONFIG: the 'chief' task, or worker 0 when the
    cluster has no chief. Without TF_CONFIG a process is its own chief."""
    task = task_from_env(environ)
    if task is None:
        return True
    cluster = json.loads(environ["TF_CONFIG"]).get("cluster", {})
    kind, index = task
    return kind == "chief" or ("chief" not in cluster and kind == "worker" and index == 0)


def launch_local_workers(train_argv: list[str], num_workers: int,
                         threads_per_worker: int | None = None, poll_s: float = 0.5) -> int:
    """Runs `fcnedge train TRAIN_ARGV --strategy multi-worker` as N local processes.

    The chief's output goes to this terminal; the other workers' to log files, shown when one
    fails. If any worker fails, the rest are stopped (a collective would wait for it forever).
    Returns 0, or raises RuntimeError naming the failed worker.
    """
    configs = local_tf_configs(num_workers)
    log_dir = Path(tempfile.mkdtemp(prefix="fcnedge-workers-"))
    processes, logs = [], []
    for index, config in enumerate(configs):
        argv = [sys.executable, "-m", "fcnedge", "train", *train_argv,
                "--strategy", "multi-worker"]
        if threads_per_worker:
            argv += ["--threads", str(threads_per_worker)]
        env = dict(os.environ, TF_CONFIG=json.dumps(config))
        if index == 0:
            processes.append(subprocess.Popen(argv, env=env, stderr=child_stderr()))
            logs.append(None)
        else:
            handle = open(log_dir / f"worker-{index}.log", "wb")
            processes.append(subprocess.Popen(argv, env=env, stdout=handle,
                                              stderr=subprocess.STDOUT))
            logs.append(handle)
    log.info("started %d workers on %s", num_workers, ", ".join(configs[0]["cluster"]["worker"]))
    try:
        while True:
            codes = [process.poll() for process in processes]
            failed = [(i, code) for i, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                index, code = failed[0]
                tail = ""
                if logs[index] is not None:
                    logs[index].flush()
                    text = (log_dir / f"worker-{index}.log").read_text(errors="replace")
                    tail = text.strip().splitlines()[-1] if text.strip() else ""
                raise RuntimeError(f"worker {index} exited with code {code}"
                                   + (f": {tail}" if tail else "")
                                   + f" (logs in {log_dir})")
            if all(code == 0 for code in codes):
                return 0
            time.sleep(poll_s)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for handle in logs:
            if handle is not None:
                handle.close()


def make_strategy(name: str):
    """Maps --strategy to a tf.distribute strategy."""
    from fcnedge.train.tfcompat import tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if not os.environ.get("TF_CONFIG"):
        raise InputError.about("strategy", "multi-worker", "TF_CONFIG is not set (it names the "
                               "cluster and this worker's task; see `fcnedge train --help`)")
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy) -> bool:
    """Whether this process writes the run's files (workers other than the chief do not)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (
        not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)
