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


# -- the Bedrock side of the port, against botocore's Stubber (no network, no account) -----------
def stubbed_bedrock():
    import io

    import boto3
    from botocore.response import StreamingBody
    from botocore.stub import Stubber

    from sluice.engine.ai import BedrockModels

    models = BedrockModels.__new__(BedrockModels)
    models.client = boto3.client("bedrock-runtime", region_name="us-east-1")
    stubber = Stubber(models.client)

    def body(payload: bytes) -> StreamingBody:
        return StreamingBody(io.BytesIO(payload), len(payload))

    return models, stubber, body


def test_bedrock_embeddings_call_titan_and_read_its_vectors():
    import json

    models, stubber, body = stubbed_bedrock()
    for vector in ([1.0, 0.0], [0.0, 1.0]):
        stubber.add_response(
            "invoke_model",
            {"body": body(json.dumps({"embedding": vector}).encode()), "contentType": "application/json"},
            {
                "modelId": "amazon.titan-embed-text-v2:0",
                "body": json.dumps({"inputText": "a" if vector[0] else "b", "normalize": True}),
                "contentType": "application/json",
                "accept": "application/json",
            },
        )
    with stubber:
        vectors = models.embed(["a", "b"], None)
    assert vectors.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    stubber.assert_no_pending_responses()


def test_bedrock_text_goes_through_converse_with_the_system_prompt():
    models, stubber, _ = stubbed_bedrock()
    stubber.add_response(
        "converse",
        {
            "output": {"message": {"role": "assistant", "content": [{"text": "positive"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 5, "outputTokens": 1, "totalTokens": 6},
            "metrics": {"latencyMs": 10},
        },
        {
            "modelId": "my-model",
            "messages": [{"role": "user", "content": [{"text": "I love it"}]}],
            "inferenceConfig": {"maxTokens": 512, "temperature": 0},
            "system": [{"text": "Classify sentiment."}],
        },
    )
    with stubber:
        assert models.complete("Classify sentiment.", "I love it", "my-model") == "positive"


def test_llm_enrich_fills_the_prompt_from_each_row(runner, monkeypatch):
    """The row-by-row text path, with a model that echoes its prompt in capitals."""
    import sluice.engine.ai as ai

    class Echo:
        name = "echo"

        def embed(self, texts, model):
            raise AssertionError("llm_enrich embeds nothing")

        def complete(self, system, prompt, model):
            return prompt.upper()

    monkeypatch.setattr(ai, "configured_models", Echo)
    source = runner.run("docs", "source", {"kind": "inline", "rows": TEXTS[:2]})
    result = runner.run(
        "enrich",
        "transform",
        {
            "ai": {
                "recipe_type": "llm_enrich",
                "run_config": {"prompt": "About {text}", "output_column": "shout"},
            }
        },
        {"docs": source},
    )
    assert [r["shout"] for r in rows_of(result)] == [
        "ABOUT THE CAT SAT ON THE MAT.",
        "ABOUT A KITTEN WAS SITTING ON THE RUG.",
    ]
    with pytest.raises(NodeFailed, match=r"the prompt names body, not columns of the input \(id, text\)"):
        runner.run(
            "bad",
            "transform",
            {"ai": {"recipe_type": "llm_enrich", "run_config": {"prompt": "{body}"}}},
            {"docs": source},
        )
