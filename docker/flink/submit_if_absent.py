"""Run a Flink submit command unless a job of the same name is already active.

    python3 submit_if_absent.py --rest-url http://jobmanager:8081 --job-name seqrec-features \\
        -- flink run --detached -py /opt/seqrec/pipelines/features_job.py ...

``docker compose up`` starts one-shot services again on every call, so a plain
``flink run`` would add a second copy of the feature job each time. The job
name is the one the job sets as ``pipeline.name``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from datetime import timedelta

logger = logging.getLogger(__name__)

REST_TIMEOUT = timedelta(seconds=10)
TERMINAL_STATES = frozenset({"FINISHED", "CANCELED", "FAILED"})
"""Flink job states after which a job of the same name may be submitted again."""


def active_jobs(rest_url: str, job_name: str) -> list[dict]:
    """Return the jobs named ``job_name`` that are not in a terminal state, from ``/jobs/overview``.

    Raises urllib.error.URLError (or OSError) when the REST API does not respond.
    """
    with urllib.request.urlopen(f"{rest_url}/jobs/overview", timeout=REST_TIMEOUT.total_seconds()) as reply:
        jobs = json.load(reply)["jobs"]
    return [job for job in jobs if job["name"] == job_name and job["state"] not in TERMINAL_STATES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a Flink submit command unless the job is already active.")
    parser.add_argument("--rest-url", required=True, help="Flink REST API of the JobManager, e.g. http://jobmanager:8081")
    parser.add_argument("--job-name", required=True, help="pipeline.name of the job, e.g. seqrec-features")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the submit command, after `--`")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("missing the submit command after `--`")
    try:
        active = active_jobs(args.rest_url, args.job_name)
    except (OSError, KeyError, json.JSONDecodeError) as error:
        logger.error("failed to list the jobs at %s/jobs/overview: %s. Check that the JobManager is up", args.rest_url, error)
        return 1
    if active:
        described = ", ".join(f"{job['jid']} ({job['state']})" for job in active)
        logger.info("job %s is already active (%s), so it is not submitted again", args.job_name, described)
        return 0
    logger.info("submitting %s: %s", args.job_name, " ".join(command))
    try:
        os.execvp(command[0], command)
    except OSError as error:
        logger.error("failed to run %s: %s", command[0], error)
    return 1


if __name__ == "__main__":
    sys.exit(main())
