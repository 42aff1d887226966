from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_binary_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained 2-class ("non-toxic"/"toxic") tiny BERT saved to disk."""
    from tests.safety.tiny_classifier import build_tiny_classifier

    return build_tiny_classifier(tmp_path_factory.mktemp("tiny_binary"))


@pytest.fixture(scope="session")
def tiny_multilabel_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained multi-label tiny BERT: outputs neutral / insult / toxic, sigmoid per label."""
    from tests.safety.tiny_classifier import build_tiny_classifier

    return build_tiny_classifier(
        tmp_path_factory.mktemp("tiny_multilabel"),
        id2label={0: "neutral", 1: "insult", 2: "toxic"},
        problem_type="multi_label_classification",
        toxic_outputs=(1, 2),
    )
