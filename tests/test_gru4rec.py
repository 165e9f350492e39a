"""GRU4Rec on tiny hand-built sessions: batching, hidden-state resets, losses, sampling and training."""

from __future__ import annotations

import dataclasses
import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipelines.training.gru4rec import GRU4Rec, GRU4RecConfig
from pipelines.training.gru4rec_batches import PopularitySampler, SessionParallelBatches
from pipelines.training.gru4rec_model import GRU4RecNetwork
from pipelines.training.gru4rec_train import (
    EpochTrainer,
    bpr_max_loss,
    cross_entropy_loss,
    duplicate_target_mask,
    reset_hidden,
)
from pipelines.training.sessions import next_item_cases

N_ITEMS = 12
# Oldest first. Session 3 has one event and must be skipped.
SESSIONS = [
    np.array([0, 1, 2]),
    np.array([3, 4]),
    np.array([5, 6, 7]),
    np.array([8]),
    np.array([9, 10]),
]
# Session lengths vary, so slots switch sessions at different steps.
VARIED_SESSIONS = [np.arange(start, start + length) % N_ITEMS for start, length in
                   [(0, 4), (2, 2), (4, 3), (6, 2), (1, 5), (3, 2), (7, 3), (5, 2), (0, 3), (9, 2)]]


def tiny_config(**changes) -> GRU4RecConfig:
    base = GRU4RecConfig(hidden_size=8, batch_size=2, n_sample=4, epochs=1, device="cpu", seed=0)
    return dataclasses.replace(base, **changes)


def record_gru_states(network: GRU4RecNetwork) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Hook the GRU to record the hidden state fed into each step and the one it returns."""
    fed, returned = [], []
    network.gru.register_forward_pre_hook(lambda module, args: fed.append(args[1].detach().clone()))
    network.gru.register_forward_hook(lambda module, args, output: returned.append(output[1].detach().clone()))
    return fed, returned


def run_recorded_epoch(sessions, batch_size):
    torch.manual_seed(0)
    config = tiny_config(batch_size=batch_size, hidden_size=6)
    network = GRU4RecNetwork(N_ITEMS, config)
    trainer = EpochTrainer(network, sessions, config)
    fed, returned = record_gru_states(network)
    trainer.run_epoch(1)
    resets = [step.reset.copy() for step in trainer.batches]
    return resets, fed, returned


# --- session-parallel batching ---------------------------------------------------------------


def test_batches_follow_time_order():
    batches = SessionParallelBatches(SESSIONS, batch_size=2)
    steps = [
        (step.inputs.tolist(), step.targets.tolist(), step.reset.tolist()) for step in batches
    ]
    # Slots start on sessions 0 and 1. Session 1 ends after one pair, so session 2
    # takes slot 1. Session 3 is too short, so session 4 takes slot 0 next. Both
    # slots then finish with no session left, which ends the epoch.
    assert steps == [
        ([0, 3], [1, 4], [True, True]),
        ([1, 5], [2, 6], [False, True]),
        ([9, 6], [10, 7], [True, False]),
    ]
    assert batches.skipped_sessions == 1


def test_batches_repeat_without_shuffle():
    batches = SessionParallelBatches(VARIED_SESSIONS, batch_size=3)
    first = [(step.inputs.tolist(), step.targets.tolist()) for step in batches]
    second = [(step.inputs.tolist(), step.targets.tolist()) for step in batches]
    assert first == second


def test_batches_need_batch_size_sessions():
    with pytest.raises(ValueError, match="lower batch_size"):
        SessionParallelBatches(SESSIONS, batch_size=5)


# --- hidden-state reset and masks ------------------------------------------------------------


def test_hidden_reset_on_new_session():
    resets, fed, returned = run_recorded_epoch(VARIED_SESSIONS, batch_size=3)
    assert len(fed) == len(resets)
    switched = 0
    for step in range(1, len(resets)):
        for slot in range(3):
            if resets[step][slot]:
                switched += 1
                assert torch.equal(fed[step][:, slot], torch.zeros_like(fed[step][:, slot]))
            else:
                # Slots that continue their session get exactly the state they returned.
                assert torch.equal(fed[step][:, slot], returned[step - 1][:, slot])
    assert switched >= 3


def test_reset_mask_does_not_leak():
    resets, fed, returned = run_recorded_epoch(VARIED_SESSIONS, batch_size=3)
    checked = 0
    for step in range(len(resets) - 1):
        for slot in np.flatnonzero(resets[step] & ~resets[step + 1]):
            checked += 1
            assert fed[step + 1][:, slot].abs().sum() > 0
            assert torch.equal(fed[step + 1][:, slot], returned[step][:, slot])
    assert checked >= 2


def test_reset_hidden_zeroes_only_marked_slots():
    hidden = torch.arange(1.0, 13.0).reshape(2, 3, 2)  # (layers, slots, hidden)
    reset = torch.tensor([False, True, False])
    result = reset_hidden(hidden, reset)
    assert torch.equal(result[:, 1], torch.zeros(2, 2))
    assert torch.equal(result[:, [0, 2]], hidden[:, [0, 2]])
    assert torch.equal(hidden[:, 1], torch.tensor([[3.0, 4.0], [9.0, 10.0]]))  # input unchanged


# --- logits and losses -----------------------------------------------------------------------


def test_forward_returns_raw_logits():
    torch.manual_seed(0)
    network = GRU4RecNetwork(N_ITEMS, tiny_config()).eval()
    items = torch.tensor([0, 5])
    hidden = network.init_hidden(2)
    logits, _ = network(items, hidden)
    output, _ = network.step(items, hidden)
    by_hand = output @ network.output_embedding.T + network.output_bias
    assert torch.allclose(logits, by_hand)
    assert not torch.allclose(logits.sum(dim=1), torch.ones(2))
    assert torch.allclose(torch.softmax(logits, dim=1).sum(dim=1), torch.ones(2))


def test_cross_entropy_matches_hand_computation():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    candidates = torch.tensor([4, 7, 9])  # targets 4 and 7, then one sampled negative
    expected = -(
        math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.5) + math.exp(-1.0)))
        + math.log(math.exp(1.0) / (math.exp(0.0) + math.exp(1.0) + math.exp(3.0)))
    ) / 2
    loss = cross_entropy_loss(logits, candidates)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, torch.tensor([0, 1])).item(), rel=1e-6)


def test_target_not_own_negative():
    logits = torch.tensor([[2.0, 0.5, 1.5, -1.0], [0.0, 1.0, 3.0, 0.2]])
    candidates = torch.tensor([4, 7, 4, 9])  # column 2 samples slot 0's target again
    mask = duplicate_target_mask(candidates, 2)
    assert mask.tolist() == [[False, False, True, False], [False, False, False, False]]
    without_duplicate_row0 = F.cross_entropy(logits[:1, [0, 1, 3]], torch.tensor([0]))
    row1 = F.cross_entropy(logits[1:], torch.tensor([1]))
    expected = (without_duplicate_row0 + row1) / 2
    assert cross_entropy_loss(logits, candidates).item() == pytest.approx(expected.item(), rel=1e-6)


def test_logq_correction_subtracts_log_probability():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    candidates = torch.tensor([4, 7, 9])
    log_q = torch.log(torch.tensor([0.5, 0.25, 0.1]))
    corrected = logits - 0.5 * log_q
    expected = F.cross_entropy(corrected, torch.tensor([0, 1]))
    assert cross_entropy_loss(logits, candidates, log_q, logq=0.5).item() == pytest.approx(expected.item())


def test_bpr_max_matches_hand_computation():
    logits = torch.tensor([[2.0, 0.5, 1.5, -1.0]])
    candidates = torch.tensor([4, 7, 4, 9])  # column 2 repeats the target, so it is no negative
    regularization = 0.5
    negatives = [0.5, -1.0]
    weights = [math.exp(r) / sum(math.exp(x) for x in negatives) for r in negatives]
    sigmoid = [1 / (1 + math.exp(-(2.0 - r))) for r in negatives]
    expected = -math.log(sum(w * s for w, s in zip(weights, sigmoid)))
    expected += regularization * sum(w * r * r for w, r in zip(weights, negatives))
    assert bpr_max_loss(logits, candidates, regularization).item() == pytest.approx(expected, rel=1e-6)


# --- dropout ---------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["dropout_hidden", "dropout_embedding"])
def test_dropout_acts_on_one_layer(setting):
    torch.manual_seed(0)
    network = GRU4RecNetwork(N_ITEMS, tiny_config(n_layers=1, **{setting: 0.5}))
    items = torch.tensor([0, 3, 5])
    hidden = network.init_hidden(3)
    network.train()
    first, _ = network(items, hidden)
    second, _ = network(items, hidden)
    assert not torch.allclose(first, second)
    network.eval()
    first, _ = network(items, hidden)
    second, _ = network(items, hidden)
    assert torch.equal(first, second)


# --- negative sampling -----------------------------------------------------------------------


def test_sampler_follows_popularity_power():
    popularity = np.array([100.0, 50.0, 10.0, 1.0, 0.0, 30.0])
    alpha = 0.75
    sampler = PopularitySampler(popularity, alpha, n_sample=1000, cache_steps=50, seed=1)
    draws = np.concatenate([sampler.draw() for _ in range(200)])  # 200,000 draws, several cache refills
    frequencies = np.bincount(draws, minlength=len(popularity)) / len(draws)
    expected = popularity**alpha / (popularity**alpha).sum()
    np.testing.assert_allclose(frequencies, expected, atol=0.005)
    assert frequencies[4] == 0.0  # never seen in training, never sampled
    assert frequencies[3] > 0.0


def test_negatives_extend_beyond_batch():
    torch.manual_seed(0)
    config = tiny_config(batch_size=2, n_sample=20)
    network = GRU4RecNetwork(N_ITEMS, config)
    trainer = EpochTrainer(network, VARIED_SESSIONS, config)
    seen = []
    network.register_forward_pre_hook(lambda module, args: seen.append((args[0].clone(), args[2].clone())))
    trainer.run_epoch(1)
    batch_targets = [step.targets for step in trainer.batches]
    assert len(seen) == len(batch_targets)
    outside = 0
    for (_, candidates), targets in zip(seen, batch_targets):
        assert candidates.shape == (2 + 20,)
        assert candidates[:2].tolist() == targets.tolist()
        outside += len(set(candidates[2:].tolist()) - set(targets.tolist()))
    assert outside > len(seen)


# --- initialisation and tied embeddings ------------------------------------------------------


def test_glorot_uniform_bounds():
    torch.manual_seed(0)
    config = tiny_config(hidden_size=16, embedding_size=12, n_layers=2)
    network = GRU4RecNetwork(200, config)
    matrices = {
        "input_embedding": (network.input_embedding, 200, 12),
        "output_embedding": (network.output_embedding, 200, 16),
    }
    for name, parameter in network.gru.named_parameters():
        if name.startswith("weight"):
            for gate, block in enumerate(parameter.chunk(3, dim=0)):
                matrices[f"{name} gate {gate}"] = (block, block.shape[1], block.shape[0])
        else:
            assert torch.count_nonzero(parameter) == 0, name
    for name, (matrix, fan_a, fan_b) in matrices.items():
        bound = math.sqrt(6.0 / (fan_a + fan_b))
        largest = matrix.abs().max().item()
        assert largest <= bound, name
        assert largest > 0.8 * bound, name  # PyTorch's defaults differ: N(0, 1) and 1/sqrt(hidden)
    assert torch.count_nonzero(network.output_bias) == 0


def test_tied_embeddings_share_storage():
    network = GRU4RecNetwork(N_ITEMS, tiny_config(constrained_embedding=True))
    assert network.input_embedding is network.output_embedding
    assert network.input_embedding.data_ptr() == network.output_embedding.data_ptr()
    parameter_ids = [id(p) for p in network.parameters()]
    assert parameter_ids.count(id(network.output_embedding)) == 1
    untied = GRU4RecNetwork(N_ITEMS, tiny_config())
    assert untied.input_embedding.data_ptr() != untied.output_embedding.data_ptr()


def test_tied_embeddings_stay_shared_after_training(tmp_path):
    model = GRU4Rec(tiny_config(constrained_embedding=True)).fit(VARIED_SESSIONS, N_ITEMS)
    assert model.network.input_embedding is model.network.output_embedding
    model.save(tmp_path)
    loaded = GRU4Rec.load(tmp_path)
    assert loaded.network.input_embedding is loaded.network.output_embedding


def test_constrained_embedding_rejects_other_size():
    with pytest.raises(ValueError, match="embedding_size must be 0 or hidden_size"):
        GRU4RecConfig(hidden_size=8, embedding_size=4, constrained_embedding=True)


# --- sparse embedding gradients --------------------------------------------------------------


def train_one_epoch(**changes) -> GRU4RecNetwork:
    config = tiny_config(batch_size=3, dropout_embedding=0.2, dropout_hidden=0.3, **changes)
    torch.manual_seed(0)
    network = GRU4RecNetwork(N_ITEMS, config)
    EpochTrainer(network, VARIED_SESSIONS, config).run_epoch(1)
    return network


@pytest.mark.parametrize("tied", [False, True])
def test_sparse_gradients_train_same_weights(tied):
    sparse = train_one_epoch(constrained_embedding=tied, sparse_gradients=True)
    dense = train_one_epoch(constrained_embedding=tied, sparse_gradients=False)
    dense_state = dense.state_dict()
    for name, tensor in sparse.state_dict().items():
        torch.testing.assert_close(tensor, dense_state[name], rtol=1e-5, atol=1e-6, msg=name)


def test_sparse_gradients_touch_only_batch_rows():
    config = tiny_config(batch_size=2, n_sample=0)
    network = GRU4RecNetwork(N_ITEMS, config)
    hidden = network.init_hidden(2)
    logits, _ = network(torch.tensor([0, 3]), hidden, torch.tensor([1, 4]))
    logits.sum().backward()
    for name in ("input_embedding", "output_embedding"):
        gradient = getattr(network, name).grad
        assert gradient.is_sparse, name
        assert sorted(gradient.coalesce().indices()[0].tolist()) == ([0, 3] if name == "input_embedding" else [1, 4])


def test_sparse_gradients_default_follows_optimizer():
    assert GRU4RecConfig().use_sparse_gradients
    assert not GRU4RecConfig(optimizer="adam").use_sparse_gradients
    assert not GRU4RecConfig(sparse_gradients=False).use_sparse_gradients


def test_sparse_gradients_reject_adam():
    with pytest.raises(ValueError, match="sparse_gradients needs the adagrad optimizer"):
        GRU4RecConfig(optimizer="adam", sparse_gradients=True)


# --- checkpoint selection, learning, scoring -------------------------------------------------


def test_checkpoint_chosen_on_validation(monkeypatch):
    recalls = iter([0.2, 0.6, 0.4])
    snapshots = []

    def fake_evaluate(self, cases):
        snapshots.append({name: tensor.clone() for name, tensor in self.network.state_dict().items()})
        return {"Recall@20": next(recalls)}

    monkeypatch.setattr(GRU4Rec, "evaluate", fake_evaluate)
    valid = next_item_cases(VARIED_SESSIONS[:3])
    model = GRU4Rec(tiny_config(epochs=3)).fit(VARIED_SESSIONS, N_ITEMS, valid_cases=valid)
    final = model.network.state_dict()
    assert len(snapshots) == 3
    assert all(torch.equal(final[name], snapshots[1][name]) for name in final)
    assert not all(torch.equal(final[name], snapshots[2][name]) for name in final)
    assert [record.validation["Recall@20"] for record in model.history] == [0.2, 0.6, 0.4]


def test_fit_takes_no_test_data():
    parameters = list(inspect.signature(GRU4Rec.fit).parameters)
    assert parameters == ["self", "train_sessions", "n_items", "valid_cases"]


def successor_sessions(count: int, n_items: int, seed: int) -> list[np.ndarray]:
    """Sessions where item i is always followed by item i + 1."""
    generator = np.random.default_rng(seed)
    sessions = []
    for _ in range(count):
        length = int(generator.integers(2, 6))
        start = int(generator.integers(0, n_items - length + 1))
        sessions.append(np.arange(start, start + length))
    return sessions


@pytest.mark.parametrize("loss", ["cross-entropy", "bpr-max"])
def test_model_learns_successor(loss):
    n_items = 30
    config = GRU4RecConfig(
        hidden_size=32, batch_size=16, n_sample=16, epochs=6, learning_rate=0.1, loss=loss,
        bpr_max_lambda=0.0, device="cpu", seed=3,
    )
    valid = next_item_cases(successor_sessions(60, n_items, seed=2))
    model = GRU4Rec(config).fit(successor_sessions(400, n_items, seed=1), n_items, valid_cases=valid)
    assert model.evaluate(valid)["Recall@1"] > 0.9


def test_score_matches_stepwise_forward():
    model = GRU4Rec(tiny_config(n_layers=2)).fit(VARIED_SESSIONS, N_ITEMS)
    prefixes = [np.array([3, 4, 5]), np.array([7]), np.array([1, 2])]
    scores = model.score(prefixes)
    network = model.network.eval()
    with torch.no_grad():
        for row, prefix in enumerate(prefixes):
            hidden = network.init_hidden(1)
            for item in prefix:
                logits, hidden = network(torch.tensor([int(item)]), hidden)
            np.testing.assert_allclose(scores[row], logits[0].double().numpy(), rtol=1e-5, atol=1e-6)
    assert scores.shape == (3, N_ITEMS)
    assert scores.dtype == np.float64


def test_save_load_round_trip(tmp_path):
    model = GRU4Rec(tiny_config(embedding_size=5)).fit(VARIED_SESSIONS, N_ITEMS)
    prefixes = [np.array([0, 1]), np.array([9]), np.array([4, 5, 6])]
    model.save(tmp_path / "gru4rec")
    loaded = GRU4Rec.load(tmp_path / "gru4rec")
    assert loaded.config == dataclasses.replace(model.config, device="cpu")
    assert loaded.n_items == N_ITEMS
    np.testing.assert_array_equal(loaded.score(prefixes), model.score(prefixes))


def test_score_rejects_unknown_item():
    model = GRU4Rec(tiny_config()).fit(VARIED_SESSIONS, N_ITEMS)
    with pytest.raises(ValueError, match="outside 0..11"):
        model.score([np.array([0, N_ITEMS])])
