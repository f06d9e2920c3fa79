"""A real cluster: two Ray nodes started with `ray start` on this machine (1 CPU each, token
authentication as Ray 2.60 turns it on) and an MLflow tracking server process. `vaderbench run --address`
places a trial's two workers one on each node, and the trial's metrics, GIFs and LoRA weights reach the
server through `tracking.uri`. Every process the test starts is stopped whatever happens, and none is left.
"""

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient
from processes import adopting_orphans, free_port
from studies import artifacts_of, tiny_study, write_study

from vaderbench.runner.tracking import EXPERIMENT_KIND, NODE_TAG, TRIAL_TAG

pytestmark = pytest.mark.slow


def ray_start(env: dict, *options: str) -> None:
    # ports Ray would otherwise take at fixed defaults, where another Ray on the machine may sit
    ports = ["--dashboard-agent-listen-port", str(free_port()), "--object-store-memory", str(80 * 2**20)]
    # this Python's `ray`: the nodes' worker processes run the Python that started them, and import this tree
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--num-cpus=1",
            "--num-gpus=0",
            "--disable-usage-stats",
            *ports,
            *options,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def wait_for(url: str, process: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited with {process.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(url)


def test_two_workers_on_two_nodes_log_through_a_tracking_server(tmp_path):
    # Ray's sockets live under its temporary folder, whose path must stay short (a Unix socket's limit)
    ray_temp = Path(tempfile.mkdtemp(prefix="vb-ray-", dir="/tmp"))
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_ADDRESS", None)
    gcs, server_port = free_port(), free_port()
    server_uri = f"http://127.0.0.1:{server_port}"
    artifacts = tmp_path / "server-artifacts"
    try:
        # Ray's GCS server and autoscaler monitor outlast a SIGTERM by over 10 s: everything left is killed after 2
        with adopting_orphans(grace_s=2):
            # the server starts up while the Ray nodes do
            with (tmp_path / "server.log").open("w") as log:
                server = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "mlflow",
                        "server",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(server_port),
                        "--workers",
                        "1",
                        "--backend-store-uri",
                        f"sqlite:///{tmp_path / 'server.db'}",
                        "--serve-artifacts",
                        "--artifacts-destination",
                        str(artifacts),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            ray_start(
                env,
                "--head",
                "--node-ip-address=127.0.0.1",
                f"--port={gcs}",
                "--include-dashboard=false",
                f"--temp-dir={ray_temp}",
            )
            ray_start(env, f"--address=127.0.0.1:{gcs}")
            wait_for(f"{server_uri}/health", server)

            study = tiny_study(
                "cluster",
                {"vader": {"batch_size": 2}},
                2,
                sample_videos=1,
                resources={"workers": 2, "cpus_per_worker": 1},
                tracking={"uri": server_uri},
            )
            config = write_study(tmp_path, study)
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "vaderbench.cli",
                    "run",
                    str(config),
                    "--output",
                    str(tmp_path / "out"),
                    "--address",
                    f"127.0.0.1:{gcs}",
                    "--no-report",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=420,
            )
            assert run.returncode == 0, run.stdout + run.stderr

            client = MlflowClient(server_uri)
            experiment = client.get_experiment_by_name("cluster")
            assert experiment.tags[EXPERIMENT_KIND[0]] == EXPERIMENT_KIND[1]
            runs_page = f"{server_uri}/#/experiments/{experiment.experiment_id}/runs"
            assert f"runs page:      {runs_page}" in run.stdout
            wait_for(runs_page, server)  # the server serves its UI at that address
            (trial,) = [r for r in client.search_runs([experiment.experiment_id]) if TRIAL_TAG in r.data.tags]
            assert trial.info.status == "FINISHED"
            nodes = {trial.data.tags[f"{NODE_TAG}{rank}"] for rank in (0, 1)}
            assert len(nodes) == 2, trial.data.tags  # one worker on each node
            steps = [m.step for m in client.get_metric_history(trial.info.run_id, "reward_queries")]
            assert steps == [0, 1, 2]
            logged = set(artifacts_of(client, trial.info.run_id))
            wanted = {"samples/start.gif", "samples/end.gif", "lora/pytorch_lora_weights.safetensors"}
            assert wanted <= logged
            # they went through the server into its own artifact store, nowhere near the output folder
            stored = {p.relative_to(artifacts).as_posix() for p in artifacts.rglob("*") if p.is_file()}
            assert all(any(s.endswith(f"{trial.info.run_id}/artifacts/{w}") for s in stored) for w in wanted)
            assert not (tmp_path / "out" / "mlartifacts").exists()
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)
