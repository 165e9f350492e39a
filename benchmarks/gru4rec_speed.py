"""Benchmark: GRU4Rec training steps per second with dense and with sparse embedding gradients.

Usage: python benchmarks/gru4rec_speed.py DIGINETICA_DIR [--steps N] [--rounds N] [--threads N]

Trains on the SR-GNN Diginetica split (43,097 items) with the default
YooChoose settings of ``offline_quality.py``: tied embeddings, batch 64, 2,048
sampled negatives, hidden 100, Adagrad. Each round runs ``--steps`` steps
with dense gradients, then as many with sparse ones, so both see the same
machine load. Events/s is given against wall time and against the process's
CPU time, which other jobs on a shared machine disturb less.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.training.gru4rec_model import GRU4RecConfig, GRU4RecNetwork  # noqa: E402
from pipelines.training.gru4rec_train import EpochTrainer, reset_hidden  # noqa: E402
from pipelines.training.srgnn_split import load_srgnn_split  # noqa: E402

WARM_UP_STEPS = 20


def time_steps(trainer: EpochTrainer, steps: int) -> tuple[float, float]:
    """Run ``WARM_UP_STEPS + steps`` training steps; return the wall and CPU seconds of the last ``steps``."""
    batch_size = trainer.config.batch_size
    hidden = trainer.network.init_hidden(batch_size)
    batches = iter(trainer.batches)
    for step in range(WARM_UP_STEPS + steps):
        if step == WARM_UP_STEPS:
            wall_start, cpu_start = time.perf_counter(), time.process_time()
        batch = next(batches)
        hidden = reset_hidden(hidden, torch.from_numpy(batch.reset)).detach()
        loss, hidden = trainer.step_loss(torch.from_numpy(batch.inputs), torch.from_numpy(batch.targets), hidden)
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()
    return time.perf_counter() - wall_start, time.process_time() - cpu_start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("diginetica", type=Path, help="directory of the SR-GNN Diginetica split")
    parser.add_argument("--steps", type=int, default=200, help="timed mini-batch steps per round and setting")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of dense then sparse (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--untied", action="store_true", help="separate input and output embeddings")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    split = load_srgnn_split(args.diginetica)
    n_items = len(split.item_index)
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(
        f"cores: {os.cpu_count()}  torch threads: {torch.get_num_threads()}  machine: {platform.machine()}  "
        f"torch: {torch.__version__}  load average: {os.getloadavg()}"
    )
    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for round_number in range(1, args.rounds + 1):
        for sparse in (False, True):
            config = GRU4RecConfig(
                hidden_size=100, batch_size=64, n_sample=2048, learning_rate=0.08, logq=1.0,
                constrained_embedding=not args.untied, dropout_hidden=0.2, sparse_gradients=sparse, device="cpu",
            )
            torch.manual_seed(config.seed)
            trainer = EpochTrainer(GRU4RecNetwork(n_items, config), split.train, config)
            wall, cpu = time_steps(trainer, args.steps)
            events = args.steps * config.batch_size
            results[sparse].append((events / wall, events / cpu))
            print(
                f"round {round_number}, {'sparse' if sparse else 'dense'} gradients: "
                f"{events / wall:,.0f} events/s (wall), {events / cpu:,.0f} events/s (CPU)"
            )
    print("\n| embedding gradients | events/s, wall (median) | events/s, CPU time (median) |")
    print("|---|---|---|")
    for sparse in (False, True):
        walls, cpus = zip(*results[sparse])
        print(f"| {'sparse' if sparse else 'dense'} | {np.median(walls):,.0f} | {np.median(cpus):,.0f} |")
    print(f"\nload average at the end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
