"""AI recipe nodes (SPEC 6 and 8): a transform whose config is `{"ai": {"recipe_type", "run_config"}}`,
run on the node's one input, behind one port for the models.

- embed: the input rows with an `embedding` list column (FLOAT[], one vector a row) of
  `run_config.text_column`.
- rag_search: the `top_k` rows of an embedded input most similar to `run_config.query`, with `score`
  (cosine similarity, computed by DuckDB over the stored vectors).
- llm_enrich: each row with `run_config.output_column` (default `enrichment`), the text model's answer
  to `run_config.prompt` with `{column}` placeholders filled from the row.
- agent: the text model given `run_config.instructions` as its system prompt, once per row (the row
  as JSON is the user message), answer in `output_column`. No tools run: a recipe naming tools is
  refused when it is created.

Models. `SLUICE_AI_MODELS=bedrock` (template.yaml, every stage but `local`) runs them on Amazon Bedrock: embeddings with
`run_config.model` (default amazon.titan-embed-text-v2:0), text through the Converse API (default
anthropic.claude-3-haiku-20240307-v1:0). Otherwise (the local stack) embeddings come from WordLlama,
whose 256-dimension model and tokenizer ship inside its wheel (installed with the project; nothing is
downloaded at run time). No registry package ships a text model usable offline, so llm_enrich and
agent fail locally with that reason rather than pretend.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from pathlib import Path
from typing import Any, Protocol

from sluice.engine.errors import NodeFailed
from sluice.engine.nodes import NodeContext, Outcome
from sluice.engine.workspace import quote_identifier, quote_literal

AI_RECIPE_TYPES = ("embed", "llm_enrich", "agent", "rag_search")
MODELS_ENV = "SLUICE_AI_MODELS"
DEFAULT_EMBED_MODEL = "amazon.titan-embed-text-v2:0"
DEFAULT_TEXT_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
LOCAL_EMBED_MODEL = "wordllama-l2-supercat-256"
EMBED_BATCH = 2048
MAX_TOP_K = 1000
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


class Models(Protocol):
    name: str

    def embed(self, texts: list[str], model: str | None) -> Any:
        """A float32 array, one row per text (numpy)."""

    def complete(self, system: str | None, prompt: str, model: str | None) -> str: ...


class LocalModels:
    """Offline models: WordLlama embeddings from the files inside its package."""

    name = "local"
    _lock = threading.Lock()
    _model: Any = None

    @classmethod
    def _wordllama(cls) -> Any:
        with cls._lock:
            if cls._model is None:
                import wordllama
                from wordllama import WordLlama

                # The wheel ships weights/ and tokenizers/; pointing the cache at the package finds
                # the tokenizer there too, and disable_download makes a missing file an error.
                cls._model = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
            return cls._model

    def embed(self, texts: list[str], model: str | None) -> Any:
        if model not in (None, LOCAL_EMBED_MODEL):
            raise NodeFailed(
                f"embedding model '{model}' runs only on Amazon Bedrock; the local stack has {LOCAL_EMBED_MODEL}"
            )
        import numpy as np

        return np.asarray(self._wordllama().embed(texts, norm=True, batch_size=EMBED_BATCH), dtype=np.float32)

    def complete(self, system: str | None, prompt: str, model: str | None) -> str:
        raise NodeFailed(
            "this recipe needs a text model, and the local stack has none: no package on the registries "
            "ships text-generation weights that run offline, so llm_enrich and agent run only on Amazon "
            "Bedrock (SLUICE_AI_MODELS=bedrock, as deployed)"
        )


class BedrockModels:
    """Amazon Bedrock through boto3 (bedrock-runtime); IAM in template.yaml."""

    name = "bedrock"

    def __init__(self) -> None:
        import boto3

        self.client = boto3.client("bedrock-runtime")

    def embed(self, texts: list[str], model: str | None) -> Any:
        import numpy as np

        vectors = []
        for text in texts:
            answer = self.client.invoke_model(
                modelId=model or DEFAULT_EMBED_MODEL,
                body=json.dumps({"inputText": text, "normalize": True}),
                contentType="application/json",
                accept="application/json",
            )
            vectors.append(json.loads(answer["body"].read())["embedding"])
        return np.asarray(vectors, dtype=np.float32)

    def complete(self, system: str | None, prompt: str, model: str | None) -> str:
        request: dict[str, Any] = {
            "modelId": model or DEFAULT_TEXT_MODEL,
            "messages": [{"role": "user", "content": [{"text": prompt}]}],
            "inferenceConfig": {"maxTokens": 512, "temperature": 0},
        }
        if system:
            request["system"] = [{"text": system}]
        answer = self.client.converse(**request)
        return "".join(part.get("text", "") for part in answer["output"]["message"]["content"])


def configured_models() -> Models:
    """Bedrock where deployed (template.yaml sets SLUICE_AI_MODELS=bedrock on every stage but the
    local stack's); the offline models otherwise."""
    wanted = os.environ.get(MODELS_ENV, "local").strip().lower()
    return BedrockModels() if wanted == "bedrock" else LocalModels()


def run_ai(ctx: NodeContext, models: Models | None = None) -> Outcome:
    spec = ctx.config.get("ai")
    if not isinstance(spec, dict) or spec.get("recipe_type") not in AI_RECIPE_TYPES:
        raise ctx.config.fail(f"config.ai.recipe_type must be one of {', '.join(AI_RECIPE_TYPES)}")
    run_config = spec.get("run_config") or {}
    if not isinstance(run_config, dict):
        raise ctx.config.fail("config.ai.run_config must be an object")
    relation = ctx.single_input()
    models = models or configured_models()
    kind = spec["recipe_type"]
    if kind == "embed":
        return _embed(ctx, relation, run_config, models)
    if kind == "rag_search":
        return _rag_search(ctx, relation, run_config, models)
    return _complete_rows(ctx, relation, run_config, models, agent=kind == "agent")


def _column(ctx: NodeContext, relation: str, run_config: dict[str, Any], key: str) -> str:
    name = run_config.get(key)
    columns = [c.name for c in ctx.workspace.columns(f"SELECT * FROM {relation}")]
    if not isinstance(name, str) or name not in columns:
        raise ctx.config.fail(
            f"run_config.{key} must name a column of the input ({', '.join(columns)}), not {name!r}"
        )
    return name


def _numbered(ctx: NodeContext, relation: str) -> str:
    table = f"__ai_rows_{uuid.uuid4().hex[:8]}"
    ctx.workspace.execute(
        f"CREATE TEMP TABLE {table} AS SELECT row_number() OVER () - 1 AS __ai_rid, * FROM {relation}"
    )
    return table


def _embed(ctx: NodeContext, relation: str, run_config: dict[str, Any], models: Models) -> Outcome:
    column = _column(ctx, relation, run_config, "text_column")
    table = _numbered(ctx, relation)
    texts = [
        "" if value is None else str(value)
        for (value,) in ctx.workspace.execute(
            f"SELECT {quote_identifier(column)} FROM {table} ORDER BY __ai_rid"
        )
    ]
    vectors = models.embed(texts, run_config.get("model")) if texts else None
    dimension = int(vectors.shape[1]) if vectors is not None and len(vectors) else 0
    ctx.log.info(f"Embedded {len(texts)} rows of {column} with {models.name} models ({dimension} dimensions)")
    if not texts:
        sql = f"SELECT * EXCLUDE (__ai_rid), NULL::FLOAT[] AS embedding FROM {table}"
        return Outcome(ctx.materialize(sql, compiled_sql=sql))
    function = f"__ai_vector_{uuid.uuid4().hex[:8]}"
    import duckdb
    from duckdb.sqltypes import BIGINT

    # One Python call per row hands DuckDB its vector (10,000 rows in well under a second), as this
    # DuckDB has no Arrow or pandas to take the array whole.
    ctx.workspace.connection.create_function(
        function, lambda rid: vectors[rid].tolist(), [BIGINT], duckdb.list_type("FLOAT"), side_effects=False
    )
    try:
        sql = (
            f"SELECT * EXCLUDE (__ai_rid), {function}(__ai_rid)::FLOAT[{dimension}] AS embedding "
            f"FROM {table} ORDER BY __ai_rid"
        )
        materialized = ctx.materialize(sql, compiled_sql=sql)
    finally:
        ctx.workspace.connection.remove_function(function)
    return Outcome(materialized)


def _rag_search(ctx: NodeContext, relation: str, run_config: dict[str, Any], models: Models) -> Outcome:
    query = run_config.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ctx.config.fail("run_config.query must be a non-empty text")
    top_k = run_config.get("top_k", 5)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
        raise ctx.config.fail(f"run_config.top_k must be a whole number from 1 to {MAX_TOP_K}")
    column = run_config.get("embedding_column", "embedding")
    columns = {c.name: c.type for c in ctx.workspace.columns(f"SELECT * FROM {relation}")}
    if column not in columns or not columns[column].startswith("FLOAT["):
        raise ctx.config.fail(
            f"rag_search reads an embedded dataset: its input has no FLOAT[] column '{column}' (run an embed recipe first)"
        )
    (vector,) = models.embed([query], run_config.get("model"))
    stored = ctx.workspace.value(f"SELECT max(len({quote_identifier(column)})) FROM {relation}")
    if stored is not None and int(stored) != len(vector):
        raise ctx.config.fail(
            f"the query's embedding has {len(vector)} dimensions, the dataset's {stored}: embed both with one model"
        )
    literal = "[" + ", ".join(repr(float(x)) for x in vector) + "]::FLOAT[]"
    sql = (
        f"SELECT *, list_cosine_similarity({quote_identifier(column)}, {literal}) AS score "
        f"FROM {relation} ORDER BY score DESC NULLS LAST LIMIT {top_k}"
    )
    ctx.log.info(f"Searching {relation} for the {top_k} rows nearest to {quote_literal(query[:80])}")
    return Outcome(ctx.materialize(sql, compiled_sql=sql))


def _complete_rows(
    ctx: NodeContext, relation: str, run_config: dict[str, Any], models: Models, *, agent: bool
) -> Outcome:
    key = "instructions" if agent else "prompt"
    template = run_config.get(key)
    if not isinstance(template, str) or not template.strip():
        raise ctx.config.fail(f"run_config.{key} must be a non-empty text")
    output = run_config.get("output_column", "enrichment")
    table = _numbered(ctx, relation)
    cursor = ctx.workspace.connection.execute(f"SELECT * EXCLUDE (__ai_rid) FROM {table} ORDER BY __ai_rid")
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    if not agent:
        unknown = sorted({p for p in _PLACEHOLDER.findall(template) if p not in names})
        if unknown:
            raise ctx.config.fail(
                f"the prompt names {', '.join(unknown)}, not columns of the input ({', '.join(names)})"
            )
    answers = []
    for row in rows:
        if agent:
            answers.append(models.complete(template, json.dumps(row, default=str), run_config.get("model")))
        else:
            text = _fill(template, row)
            answers.append(models.complete(None, text, run_config.get("model")))
    function = f"__ai_answer_{uuid.uuid4().hex[:8]}"
    from duckdb.sqltypes import BIGINT, VARCHAR

    ctx.workspace.connection.create_function(
        function, lambda rid: answers[rid], [BIGINT], VARCHAR, side_effects=False
    )
    try:
        sql = f"SELECT * EXCLUDE (__ai_rid), {function}(__ai_rid) AS {quote_identifier(output)} FROM {table} ORDER BY __ai_rid"
        materialized = ctx.materialize(sql, compiled_sql=sql)
    finally:
        ctx.workspace.connection.remove_function(function)
    return Outcome(materialized)


def _fill(template: str, row: dict[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: "" if row[m.group(1)] is None else str(row[m.group(1)]), template)
