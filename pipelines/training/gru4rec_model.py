"""GRU4Rec network and its hyperparameters.

The network maps an item to an input embedding and applies dropout to it. A
GRU runs over that input, and dropout acts on the GRU output. A candidate
item's score is the dot product of that output with the item's output
embedding, plus a per-item bias.
Scores are raw logits: no softmax is applied here, so a loss applies it once.

Both dropouts act on a one-layer GRU. ``nn.GRU``'s own ``dropout`` argument only
acts between stacked layers, so it is used with ``dropout_hidden`` only when
``n_layers > 1``, in addition to the dropout on the last layer's output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

LOSSES = ("cross-entropy", "bpr-max")
OPTIMIZERS = ("adagrad", "adam")


@dataclass(frozen=True)
class GRU4RecConfig:
    """Hyperparameters of :class:`~pipelines.training.gru4rec.GRU4Rec`."""

    hidden_size: int = 100
    """Units per GRU layer; also the size of the output item embeddings."""
    embedding_size: int = 0
    """Size of the input item embedding; 0 means ``hidden_size``."""
    constrained_embedding: bool = False
    """Tie the input and output item embeddings (one matrix); needs ``embedding_size`` 0 or ``hidden_size``."""
    n_layers: int = 1
    """Stacked GRU layers."""
    dropout_embedding: float = 0.0
    """Dropout probability on the input embedding."""
    dropout_hidden: float = 0.0
    """Dropout probability on the GRU output (and between layers when ``n_layers > 1``)."""
    batch_size: int = 32
    """Session-parallel slots per mini-batch."""
    n_sample: int = 2048
    """Extra negatives per mini-batch step, drawn from popularity ** ``sample_alpha``; 0 uses in-batch negatives only."""
    sample_alpha: float = 0.75
    """Exponent on item popularity for negative sampling: 0 is uniform, 1 is proportional to popularity."""
    sample_cache_steps: int = 1000
    """Mini-batch steps whose negatives are drawn in one block."""
    loss: str = "cross-entropy"
    """``"cross-entropy"`` (softmax over target and negatives) or ``"bpr-max"``."""
    bpr_max_lambda: float = 1.0
    """Weight of the BPR-max score regularisation ``sum_j softmax(r_neg)_j * r_neg_j ** 2``."""
    logq: float = 0.0
    """Strength of the logQ correction for cross-entropy: ``logit -= logq * log(q)``; 0 turns it off."""
    optimizer: str = "adagrad"
    """``"adagrad"`` (default) or ``"adam"``.

    Adagrad is the default because it scales each parameter's step by that
    parameter's own gradient history. The embedding rows of rare items receive
    few updates, so their steps stay large.
    """
    learning_rate: float = 0.05
    """Optimizer learning rate."""
    sparse_gradients: bool | None = None
    """Give the item embeddings sparse gradients, so a step touches only the rows of its items.

    None means True with ``"adagrad"`` and False with ``"adam"``. True needs
    ``"adagrad"``: its update of a row with a zero gradient is a no-op, so
    sparse and dense gradients train the same weights, whereas Adam's
    momentum also moves rows without a gradient. The output bias keeps a
    dense gradient.
    """
    epochs: int = 5
    """Passes over the training sessions."""
    seed: int = 42
    """Seed of the weight initialisation, dropout and negative sampling."""
    device: str | None = None
    """Torch device; None picks ``"cuda"`` when available, else ``"cpu"``."""
    score_batch_size: int = 256
    """Prefixes run through the GRU at once by ``score`` and validation."""
    show_progress: bool = False
    """Show a tqdm progress bar per training epoch."""

    def __post_init__(self) -> None:
        if self.hidden_size < 1 or self.n_layers < 1 or self.batch_size < 1:
            raise ValueError(
                f"hidden_size, n_layers and batch_size must be at least 1, got "
                f"{self.hidden_size}, {self.n_layers} and {self.batch_size}"
            )
        if self.embedding_size < 0:
            raise ValueError(f"embedding_size must be 0 (use hidden_size) or positive, got {self.embedding_size}")
        if self.constrained_embedding and self.embedding_size not in (0, self.hidden_size):
            raise ValueError(
                f"constrained_embedding ties input and output embeddings, so embedding_size must be 0 or "
                f"hidden_size ({self.hidden_size}), got {self.embedding_size}"
            )
        for name in ("dropout_embedding", "dropout_hidden"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.n_sample < 0 or self.sample_cache_steps < 1:
            raise ValueError(
                f"n_sample must be >= 0 and sample_cache_steps >= 1, got {self.n_sample} and {self.sample_cache_steps}"
            )
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.sparse_gradients is True and self.optimizer != "adagrad":
            raise ValueError(
                f"sparse_gradients needs the adagrad optimizer, got {self.optimizer!r}; "
                "set sparse_gradients to None or False to train with dense gradients"
            )
        if self.logq < 0 or (self.logq > 0 and self.loss != "cross-entropy"):
            raise ValueError(f"logq must be >= 0 and is only defined for the cross-entropy loss, got {self.logq}")
        if self.epochs < 1 or self.learning_rate <= 0 or self.score_batch_size < 1:
            raise ValueError(
                f"epochs and score_batch_size must be at least 1 and learning_rate positive, got "
                f"{self.epochs}, {self.score_batch_size} and {self.learning_rate}"
            )

    @property
    def input_size(self) -> int:
        """Size of the input item embedding."""
        return self.embedding_size or self.hidden_size

    @property
    def use_sparse_gradients(self) -> bool:
        """Whether the item embeddings get sparse gradients; see ``sparse_gradients``."""
        if self.sparse_gradients is None:
            return self.optimizer == "adagrad"
        return self.sparse_gradients

    def resolved_device(self) -> torch.device:
        """Return ``device``, or cuda when available and cpu otherwise."""
        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class GRU4RecNetwork(nn.Module):
    """Item embedding, GRU and output scoring for ``n_items`` items."""

    def __init__(self, n_items: int, config: GRU4RecConfig):
        super().__init__()
        if n_items < 1:
            raise ValueError(f"n_items must be at least 1, got {n_items}")
        self.n_items = n_items
        self.config = config
        self.output_embedding = nn.Parameter(torch.empty(n_items, config.hidden_size))
        self.output_bias = nn.Parameter(torch.zeros(n_items))
        if config.constrained_embedding:
            self.input_embedding = self.output_embedding
        else:
            self.input_embedding = nn.Parameter(torch.empty(n_items, config.input_size))
        self.embedding_dropout = nn.Dropout(config.dropout_embedding)
        between_layers = config.dropout_hidden if config.n_layers > 1 else 0.0
        self.gru = nn.GRU(config.input_size, config.hidden_size, config.n_layers, dropout=between_layers)
        self.output_dropout = nn.Dropout(config.dropout_hidden)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform initialise every weight matrix and zero every bias.

        A GRU weight stacks three gate matrices (reset, update, new), and each
        gate matrix gets its own Glorot bound ``sqrt(6 / (fan_in + fan_out))``.
        """
        nn.init.xavier_uniform_(self.output_embedding)
        if self.input_embedding is not self.output_embedding:
            nn.init.xavier_uniform_(self.input_embedding)
        nn.init.zeros_(self.output_bias)
        for name, parameter in self.gru.named_parameters():
            if name.startswith("weight"):
                for gate in parameter.data.chunk(3, dim=0):
                    nn.init.xavier_uniform_(gate)
            else:
                nn.init.zeros_(parameter)

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        """Return a zero hidden state, shape ``(n_layers, batch_size, hidden_size)``."""
        return torch.zeros(self.config.n_layers, batch_size, self.config.hidden_size, device=self.output_bias.device)

    def step(self, items: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance every slot by one event: returns the output after dropout and the new hidden state.

        ``items`` has shape ``(B,)`` and ``hidden`` ``(n_layers, B, H)``.
        """
        embedded = F.embedding(items, self.input_embedding, sparse=self.config.use_sparse_gradients)  # (B, E)
        output, hidden = self.gru(self.embedding_dropout(embedded).unsqueeze(0), hidden)  # (1, B, H), (n_layers, B, H)
        return self.output_dropout(output.squeeze(0)), hidden  # (B, H)

    def item_logits(self, output: torch.Tensor, candidates: torch.Tensor | None = None) -> torch.Tensor:
        """Return raw scores of ``candidates`` (all items when None), shape ``(B, n_candidates)``."""
        if candidates is None:
            return output @ self.output_embedding.T + self.output_bias  # (B, n_items)
        weights = F.embedding(candidates, self.output_embedding, sparse=self.config.use_sparse_gradients)  # (C, H)
        return output @ weights.T + self.output_bias[candidates]  # (B, C)

    def forward(
        self, items: torch.Tensor, hidden: torch.Tensor, candidates: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run one step and return ``(logits, hidden)``; logits are raw scores without softmax."""
        output, hidden = self.step(items, hidden)
        return self.item_logits(output, candidates), hidden

    def encode_prefixes(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Run each prefix from a zero state and return its last output, shape ``(B, H)``.

        ``padded`` has shape ``(T, B)`` (time first) and ``lengths`` ``(B,)`` on
        the CPU. Padding positions are never fed to the GRU.
        """
        embedded = self.embedding_dropout(self.input_embedding[padded])  # (T, B, E)
        packed = pack_padded_sequence(embedded, lengths, enforce_sorted=False)
        _, hidden = self.gru(packed)  # (n_layers, B, H), back in input order
        return self.output_dropout(hidden[-1])  # (B, H)
