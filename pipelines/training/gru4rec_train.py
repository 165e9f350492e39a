"""GRU4Rec losses, the training loop and checkpoint selection on validation.

Each mini-batch step scores every slot's output against the candidate items
``[targets of all slots] + [n_sample sampled negatives]``. Column ``b`` is
slot b's own target, so the other slots' targets serve as in-batch negatives.
A candidate that is the same item as a slot's target, other than column b, is
masked out of that slot's row, so the target never counts as its own negative.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pipelines.training.gru4rec_batches import PopularitySampler, SessionParallelBatches
from pipelines.training.gru4rec_model import GRU4RecConfig, GRU4RecNetwork

log = logging.getLogger(__name__)

SELECTION_METRIC = "Recall@20"
"""Validation metric (expectation over random tie order) that picks the kept epoch."""

BPR_MAX_EPSILON = 1e-24
"""Added inside the BPR-max logarithm so a vanishing sum gives a large finite loss."""


@dataclass
class EpochRecord:
    """Training loss, throughput and validation metrics of one epoch."""

    epoch: int
    loss: float
    events_per_second: float
    validation: dict[str, float] = field(default_factory=dict)


def duplicate_target_mask(candidates: torch.Tensor, n_targets: int) -> torch.Tensor:
    """Mark candidates that repeat a slot's target outside its own column, shape ``(B, C)``.

    ``candidates`` has shape ``(C,)`` and starts with the ``B = n_targets`` targets.
    """
    targets = candidates[:n_targets]
    same_item = targets[:, None] == candidates[None, :]  # (B, C)
    own_column = torch.eye(n_targets, candidates.shape[0], dtype=torch.bool, device=candidates.device)  # (B, C)
    return same_item & ~own_column


def cross_entropy_loss(
    logits: torch.Tensor, candidates: torch.Tensor, log_q: torch.Tensor | None = None, logq: float = 0.0
) -> torch.Tensor:
    """Mean softmax cross-entropy of each slot's target column against the other candidates.

    ``logits`` are raw scores ``(B, C)``; the softmax is applied once, inside
    ``F.cross_entropy``. With ``logq > 0``, ``logq * log_q`` is subtracted from
    every column, including the target's own. ``log_q`` ``(C,)`` is the log
    probability of each candidate under the distribution it came from. That is
    the target distribution (item popularity) for the first B columns and the
    sampling distribution for the rest.
    """
    n_targets = logits.shape[0]
    if logq > 0:
        logits = logits - logq * log_q  # (B, C)
    logits = logits.masked_fill(duplicate_target_mask(candidates, n_targets), float("-inf"))
    return F.cross_entropy(logits, torch.arange(n_targets, device=logits.device))


def bpr_max_loss(logits: torch.Tensor, candidates: torch.Tensor, regularization: float) -> torch.Tensor:
    """Mean BPR-max loss over slots.

    For slot b with target score ``r_pos`` and negative scores ``r_j``, weights
    ``s_j = softmax(r_neg)_j``, the loss is
    ``-log(sum_j s_j * sigmoid(r_pos - r_j)) + regularization * sum_j s_j * r_j ** 2``.
    The target's own column and masked duplicates are not negatives.
    """
    n_targets = logits.shape[0]
    own_column = torch.eye(n_targets, logits.shape[1], dtype=torch.bool, device=logits.device)
    not_negative = duplicate_target_mask(candidates, n_targets) | own_column  # (B, C)
    weights = torch.softmax(logits.masked_fill(not_negative, float("-inf")), dim=1)  # (B, C), 0 off negatives
    positive = logits.diagonal()[:, None]  # (B, 1)
    ranking = (weights * torch.sigmoid(positive - logits)).sum(dim=1)  # (B,)
    penalty = (weights * logits.square()).sum(dim=1)  # (B,)
    return (-torch.log(ranking + BPR_MAX_EPSILON) + regularization * penalty).mean()


def reset_hidden(hidden: torch.Tensor, reset: torch.Tensor) -> torch.Tensor:
    """Zero the hidden state of the slots where ``reset`` ``(B,)`` is True; ``hidden`` is ``(L, B, H)``."""
    keep = (~reset).to(hidden.dtype)[None, :, None]  # (1, B, 1)
    return hidden * keep


def make_optimizer(network: GRU4RecNetwork, config: GRU4RecConfig) -> torch.optim.Optimizer:
    # torch.optim.Adagrad accepts the sparse embedding gradients of config.sparse_gradients.
    if config.optimizer == "adagrad":
        return torch.optim.Adagrad(network.parameters(), lr=config.learning_rate)
    return torch.optim.Adam(network.parameters(), lr=config.learning_rate)


class EpochTrainer:
    """Run training epochs of a network over fixed training sessions."""

    def __init__(self, network: GRU4RecNetwork, train_sessions: Sequence[np.ndarray], config: GRU4RecConfig):
        self.network = network
        self.config = config
        self.device = next(network.parameters()).device
        self.batches = SessionParallelBatches(train_sessions, config.batch_size)
        if self.batches.skipped_sessions:
            log.info("skipped %d training sessions shorter than 2 events", self.batches.skipped_sessions)
        popularity = np.bincount(self.batches.items, minlength=network.n_items).astype(np.float64)
        self.sampler = PopularitySampler(
            popularity, config.sample_alpha, config.n_sample, config.sample_cache_steps, config.seed
        )
        log_target = np.log(np.maximum(popularity, 1.0) / popularity.sum())
        log_sample = np.log(np.maximum(self.sampler.probabilities, np.finfo(np.float64).tiny))
        self.log_target_probability = torch.tensor(log_target, dtype=torch.float32, device=self.device)
        self.log_sample_probability = torch.tensor(log_sample, dtype=torch.float32, device=self.device)
        self.optimizer = make_optimizer(network, config)

    def step_loss(self, inputs: torch.Tensor, targets: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the loss of one mini-batch step and the new hidden state."""
        if self.config.n_sample > 0:
            negatives = torch.from_numpy(self.sampler.draw()).to(self.device)
            candidates = torch.cat([targets, negatives])  # (B + n_sample,)
        else:
            negatives = None
            candidates = targets
        logits, hidden = self.network(inputs, hidden, candidates)  # (B, C)
        if self.config.loss == "bpr-max":
            return bpr_max_loss(logits, candidates, self.config.bpr_max_lambda), hidden
        log_q = None
        if self.config.logq > 0:
            parts = [self.log_target_probability[targets]]
            if negatives is not None:
                parts.append(self.log_sample_probability[negatives])
            log_q = torch.cat(parts)  # (C,)
        return cross_entropy_loss(logits, candidates, log_q, self.config.logq), hidden

    def run_epoch(self, epoch: int) -> EpochRecord:
        """Train one pass over the sessions and return its mean loss and throughput."""
        self.network.train()
        hidden = self.network.init_hidden(self.config.batch_size)
        total_loss = 0.0
        steps = 0
        started = time.perf_counter()
        progress = tqdm(self.batches, desc=f"epoch {epoch}", unit="step", disable=not self.config.show_progress)
        for batch in progress:
            reset = torch.from_numpy(batch.reset).to(self.device)
            # Detaching truncates backpropagation to one step, as GRU4Rec does.
            hidden = reset_hidden(hidden, reset).detach()
            inputs = torch.from_numpy(batch.inputs).to(self.device)
            targets = torch.from_numpy(batch.targets).to(self.device)
            loss, hidden = self.step_loss(inputs, targets, hidden)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"epoch {epoch}, step {steps}: the loss is {loss.item()}; lower learning_rate "
                    "or bpr_max_lambda"
                )
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            total_loss += loss.item()
            steps += 1
        elapsed = time.perf_counter() - started
        events = steps * self.config.batch_size
        return EpochRecord(epoch, total_loss / max(steps, 1), events / max(elapsed, 1e-9))


def train_network(
    network: GRU4RecNetwork,
    train_sessions: Sequence[np.ndarray],
    config: GRU4RecConfig,
    validate: Callable[[], dict[str, float]] | None = None,
) -> list[EpochRecord]:
    """Train for ``config.epochs`` epochs and keep the epoch with the best validation Recall@20.

    ``validate`` returns validation metrics keyed like ``"Recall@20"``. The
    state of the best epoch (the first one on ties) is restored at the end.
    Without ``validate``, the last epoch's state is kept.
    """
    trainer = EpochTrainer(network, train_sessions, config)
    log.info(
        "training GRU4Rec: %d sessions, %d items, %d epochs, %s",
        trainer.batches.n_sessions, network.n_items, config.epochs, config,
    )
    history = []
    best_state = None
    best_value = float("-inf")
    for epoch in range(1, config.epochs + 1):
        record = trainer.run_epoch(epoch)
        if validate is not None:
            record.validation = validate()
            value = record.validation[SELECTION_METRIC]
            if value > best_value:
                best_value = value
                best_state = {name: tensor.detach().clone() for name, tensor in network.state_dict().items()}
        history.append(record)
        log.info(
            "epoch %d: loss %.4f, %.0f events/s, validation %s",
            epoch, record.loss, record.events_per_second, record.validation or "not run",
        )
    if best_state is not None:
        network.load_state_dict(best_state)
        best_epoch = max(history, key=lambda item: (item.validation[SELECTION_METRIC], -item.epoch)).epoch
        log.info("restored epoch %d, validation %s %.4f", best_epoch, SELECTION_METRIC, best_value)
    return history
