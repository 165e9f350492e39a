"""The blended score: each component scaled to [0, 1] over the candidates, then a weighted sum.

Where the weights come from: the configuration (:class:`serving.config.BlendWeights`)
sets them, and a learner snapshot that carries a ``blend_weights`` mapping
overrides them. The learner learns from every event as it happens, so it can measure
which source predicted the next item recently. The configuration is the
fallback, and the only source while the learner publishes no weights.
NOTE: the River learner's snapshots carry no ``blend_weights`` yet, so the
configured weights are the ones in use.

>>> blend_scores(["a", "b"], {"popularity": {"a": 4.0, "b": 2.0}}, {"popularity": 1.0, "torch": 1.0})
{'a': 1.0, 'b': 0.5}
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping, Sequence

from serving.config import BLEND_COMPONENTS, BlendWeights

logger = logging.getLogger(__name__)


def learner_weights(snapshot: Any) -> dict[str, float] | None:
    """Return the snapshot's ``blend_weights`` if it has valid ones, else None.

    Valid weights map component names (:data:`BLEND_COMPONENTS`) to finite
    numbers >= 0 with a positive sum. Components the snapshot leaves out get 0.
    """
    weights = getattr(snapshot, "blend_weights", None)
    if not isinstance(weights, Mapping):
        return None
    result = {name: weights.get(name, 0.0) for name in BLEND_COMPONENTS}
    valid = all(isinstance(value, (int, float)) and math.isfinite(value) and value >= 0 for value in result.values())
    if not valid or sum(result.values()) <= 0 or set(weights) - set(BLEND_COMPONENTS):
        logger.warning("ignoring invalid blend weights of snapshot %s: %s", getattr(snapshot, "version", "?"), weights)
        return None
    return {name: float(value) for name, value in result.items()}


def choose_weights(configured: BlendWeights, snapshot: Any) -> tuple[dict[str, float], str]:
    """Return the weights to use and where they came from: ``"learner"`` or ``"config"``."""
    weights = learner_weights(snapshot) if snapshot is not None else None
    if weights is not None:
        return weights, "learner"
    return configured.as_dict(), "config"


def blend_scores(
    candidates: Sequence[str], components: Mapping[str, Mapping[str, float]], weights: Mapping[str, float]
) -> dict[str, float]:
    """Blend the component scores of each candidate.

    ``components`` maps a component name to the scores it has, and a candidate
    it does not score gets 0 there. Each component is divided by its largest
    score among the candidates (scores are >= 0). Components absent from
    ``components``, or with no positive score, drop out, and the weights of the
    rest are divided by their sum, so the blended score stays in [0, 1].
    """
    present = {name: scores for name, scores in components.items() if weights.get(name, 0) > 0 and scores}
    maxima = {name: max((scores.get(item, 0.0) for item in candidates), default=0.0) for name, scores in present.items()}
    present = {name: scores for name, scores in present.items() if maxima[name] > 0}
    total = sum(weights[name] for name in present)
    if total <= 0:
        return {item: 0.0 for item in candidates}
    blended = {}
    for item in candidates:
        value = 0.0
        for name, scores in present.items():
            value += weights[name] * scores.get(item, 0.0) / maxima[name]
        blended[item] = value / total
    return blended
