"""TorchScript export of a trained GRU4Rec network, for serving without this package.

The exported module keeps only what inference needs (embeddings, GRU, output
layer) in eval mode, so it loads with ``torch.jit.load`` alone. Its
``forward`` takes the item indices of one session prefix, oldest first, as a
LongTensor of shape ``(T,)`` and returns the logits over all items, shape
``(n_items,)``, exactly as :meth:`pipelines.training.gru4rec.GRU4Rec.score`
scores that prefix (in float32 where ``score`` returns float64).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pipelines.training.gru4rec_model import GRU4RecNetwork

SCRIPTED_FILE = "model.ts"


class GRU4RecInference(nn.Module):
    """Score all items after one session prefix; dropout-free copy of a :class:`GRU4RecNetwork`."""

    def __init__(self, network: GRU4RecNetwork):
        super().__init__()
        self.n_items = network.n_items
        self.input_embedding = nn.Parameter(network.input_embedding.detach().cpu().clone())
        self.output_embedding = nn.Parameter(network.output_embedding.detach().cpu().clone())
        self.output_bias = nn.Parameter(network.output_bias.detach().cpu().clone())
        self.gru = nn.GRU(network.gru.input_size, network.gru.hidden_size, network.gru.num_layers)
        self.gru.load_state_dict({name: tensor.detach().cpu() for name, tensor in network.gru.state_dict().items()})
        self.requires_grad_(False)
        self.eval()

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        embedded = self.input_embedding[items].unsqueeze(1)  # (T, 1, E)
        _, hidden = self.gru(embedded)  # (n_layers, 1, H)
        output = hidden[-1]  # (1, H)
        return (output @ self.output_embedding.T + self.output_bias).squeeze(0)  # (n_items,)


def export_scripted(network: GRU4RecNetwork, directory: str | Path) -> Path:
    """Write the TorchScript inference module of ``network`` to ``directory/model.ts``; returns the path."""
    path = Path(directory) / SCRIPTED_FILE
    scripted = torch.jit.script(GRU4RecInference(network))
    scripted.save(str(path))
    return path
