"""Submit the feature job to the test cluster with `flink run -py`, as a user would."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

from stack import flink
from stack.config import StackConfig

JOB = Path(__file__).resolve().parents[1] / "pipelines" / "features_job.py"
RUN_TIMEOUT = timedelta(minutes=8)


def run_features_job(config: StackConfig, *job_args: str, detached: bool = False) -> subprocess.CompletedProcess:
    """Run `flink run -py features_job.py` against the cluster; raise with Flink's output if it fails."""
    command = flink.run_command(config, JOB, "--bootstrap-servers", config.bootstrap_servers, *job_args, detached=detached)
    result = subprocess.run(
        command, env=flink.environment(config), capture_output=True, text=True, timeout=RUN_TIMEOUT.total_seconds()
    )
    if result.returncode != 0:
        raise AssertionError(f"flink run failed ({result.returncode}):\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}")
    return result
