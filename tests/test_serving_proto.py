"""The committed generated code matches the proto, and the TorchScript export scores like GRU4Rec."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from serving.protos.generate import PROTO_FILES, REPOSITORY_ROOT, generate, generated_files
from tests.serving_helpers import CATALOGUE, N_ITEMS, successor_sessions


def test_generated_code_is_current(tmp_path):
    generate(tmp_path)

    for proto in PROTO_FILES:
        for path in generated_files(proto):
            committed = (REPOSITORY_ROOT / path).read_text()
            assert (tmp_path / path).read_text() == committed, f"{path} is stale; run `make proto` and commit it"


@pytest.mark.parametrize("n_layers", [1, 2])
def test_scripted_module_matches_score(tmp_path, n_layers):
    from pipelines.training.gru4rec import GRU4Rec, GRU4RecConfig

    config = GRU4RecConfig(hidden_size=12, batch_size=4, n_sample=6, epochs=1, n_layers=n_layers,
                           dropout_hidden=0.3, dropout_embedding=0.2, device="cpu")
    model = GRU4Rec(config).fit(successor_sessions(40, 5, seed=3), n_items=N_ITEMS)
    model.save(tmp_path)
    scripted = torch.jit.load(str(tmp_path / "model.ts"))
    prefixes = [np.array([3]), np.array([5, 6, 7]), np.array([29, 0, 1, 2, 3, 4])]

    expected = model.score(prefixes)
    actual = np.stack([scripted(torch.as_tensor(prefix, dtype=torch.int64)).numpy() for prefix in prefixes])

    assert actual.shape == (len(prefixes), len(CATALOGUE))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
