"""AI recipe nodes on the offline models the project installs (WordLlama's weights ship in its
wheel): embeddings that rank paraphrases above unrelated text, rag_search over an embedded input,
and text recipes that fail locally with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from sluice.engine import NodeFailed, Storage
from sluice.engine.ai import LocalModels
from tests.engine_runs import NodeRunner, rows_of

TEXTS = [
    {"id": 1, "text": "The cat sat on the mat."},
    {"id": 2, "text": "A kitten was sitting on the rug."},
    {"id": 3, "text": "Quarterly revenue grew by ten percent."},
    {"id": 4, "text": "Sales went up 10% this quarter."},
    {"id": 5, "text": "How do I reset my password?"},
]


@pytest.fixture
def runner(tmp_path) -> NodeRunner:
    return NodeRunner(Storage.local(tmp_path / "store"))


def cosine(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_local_embeddings_rank_paraphrases_above_unrelated_text():
    vectors = LocalModels().embed([t["text"] for t in TEXTS], None)
    assert vectors.shape == (5, 256)
    assert cosine(vectors[0], vectors[1]) > max(
        cosine(vectors[0], vectors[2]), cosine(vectors[0], vectors[4])
    )
    assert cosine(vectors[2], vectors[3]) > max(
        cosine(vectors[2], vectors[0]), cosine(vectors[2], vectors[4])
    )


def test_embed_then_rag_search_nodes(runner):
    source = runner.run("docs", "source", {"kind": "inline", "rows": TEXTS})
    embedded = runner.run(
        "emb",
        "transform",
        {"ai": {"recipe_type": "embed", "run_config": {"text_column": "text"}}},
        {"docs": source},
    )
    assert embedded.row_count == 5
    assert [(c.name, c.type) for c in embedded.columns][-1] == ("embedding", "FLOAT[]")
    assert [r["id"] for r in rows_of(embedded)] == [1, 2, 3, 4, 5]
    assert len(rows_of(embedded)[0]["embedding"]) == 256
    found = runner.run(
        "search",
        "transform",
        {
            "ai": {
                "recipe_type": "rag_search",
                "run_config": {"query": "did sales grow this quarter", "top_k": 2},
            }
        },
        {"emb": embedded},
    )
    assert sorted(r["id"] for r in rows_of(found)) == [3, 4]
    assert rows_of(found)[0]["score"] >= rows_of(found)[1]["score"]


def test_ai_nodes_refuse_bad_configs_and_text_models_fail_locally_saying_why(runner):
    source = runner.run("docs", "source", {"kind": "inline", "rows": TEXTS})
    with pytest.raises(
        NodeFailed, match=r"run_config.text_column must name a column of the input \(id, text\)"
    ):
        runner.run(
            "e",
            "transform",
            {"ai": {"recipe_type": "embed", "run_config": {"text_column": "body"}}},
            {"docs": source},
        )
    with pytest.raises(NodeFailed, match="reads an embedded dataset"):
        runner.run(
            "r",
            "transform",
            {"ai": {"recipe_type": "rag_search", "run_config": {"query": "x"}}},
            {"docs": source},
        )
    with pytest.raises(NodeFailed, match="no package on the registries ships text-generation weights"):
        runner.run(
            "l",
            "transform",
            {"ai": {"recipe_type": "llm_enrich", "run_config": {"prompt": "Summarise {text}"}}},
            {"docs": source},
        )
