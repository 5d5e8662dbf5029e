"""OpenLineage RunEvents (spec 2-0-2) as the ingest reads them: what the spec requires, what a real
client (openlineage-python) sends, the batch limit, the idempotency key, counts and column lineage."""

from __future__ import annotations

import uuid

import pytest
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import column_lineage_dataset, output_statistics_output_dataset
from openlineage.client.serde import Serde
from pydantic import ValidationError

from sluice.domain import openlineage as ol
from sluice.errors import PayloadTooLarge, ValidationFailed


def validate(model, data, loc):
    return model.model_validate(data)


def client_event(**changes):
    event = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime="2026-12-03T10:00:00.123+00:00",
        run=Run(runId=str(uuid.uuid4())),
        job=Job(namespace="dbt", name="shop.orders"),
        producer="https://github.com/dbt-labs/dbt-core/1.9",
        inputs=[InputDataset(namespace="postgres://db", name="raw.orders")],
        outputs=[
            OutputDataset(
                namespace="postgres://db",
                name="mart.orders",
                facets={
                    "columnLineage": column_lineage_dataset.ColumnLineageDatasetFacet(
                        fields={
                            "total": column_lineage_dataset.Fields(
                                inputFields=[
                                    column_lineage_dataset.InputField(
                                        namespace="postgres://db", name="raw.orders", field="amount"
                                    )
                                ]
                            )
                        }
                    )
                },
                outputFacets={
                    "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                        rowCount=7
                    )
                },
            ),
            OutputDataset(
                namespace="postgres://db",
                name="mart.order_days",
                outputFacets={
                    "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                        rowCount=3
                    )
                },
            ),
        ],
    )
    return {**Serde.to_dict(event), **changes}


def test_an_event_of_the_real_client_is_read_with_its_counts_and_column_lineage():
    [event] = ol.parse_events(client_event(), validate)
    assert event.kind == "COMPLETE"
    assert event.instant.isoformat().startswith("2026-12-03T10:00:00.123")
    assert ol._row_count(event) == 10
    assert ol._column_lineage(event.outputs[0]) == {
        "total": [{"dataset": "postgres://db/raw.orders", "field": "amount"}]
    }
    assert ol._column_lineage(event.outputs[1]) is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"run": {"runId": "17"}}, ("run", "runId")),
        ({"eventType": "FINISHED"}, ("eventType",)),
        ({"eventTime": "yesterday"}, ("eventTime",)),
        ({"eventTime": "2026-12-03T10:00:00"}, ("eventTime",)),  # RFC 3339 needs the offset
        ({"producer": "not a uri"}, ("producer",)),
        ({"job": {"namespace": "dbt"}}, ("job", "name")),
        ({"inputs": [{"name": "x"}]}, ("inputs", 0, "namespace")),
        (
            {"run": {"runId": str(uuid.uuid4()), "facets": {"parent": {"run": {}}}}},
            ("run", "facets", "parent", "_producer"),
        ),
    ],
)
def test_what_the_spec_requires_is_refused_naming_the_field(change, field):
    with pytest.raises(ValidationError) as refused:
        ol.parse_events(client_event(**change), validate)
    assert refused.value.errors()[0]["loc"][: len(field)] == field


def test_missing_required_fields_are_named():
    event = client_event()
    for required in ("eventTime", "producer", "schemaURL", "run", "job"):
        partial = {k: v for k, v in event.items() if k != required}
        with pytest.raises(ValidationError) as refused:
            ol.parse_events(partial, validate)
        assert refused.value.errors()[0]["loc"] == (required,)


def test_unknown_fields_and_custom_facets_are_kept_and_event_type_may_be_absent():
    custom = {"_producer": "https://x.example", "_schemaURL": "https://x.example/f.json", "anything": [1]}
    event = client_event(extra_field=1)
    event.pop("eventType")
    event["run"]["facets"] = {"myFacet": custom}
    [read] = ol.parse_events(event, validate)
    assert read.kind == "OTHER"
    assert read.run.facets["myFacet"].model_extra == {"anything": [1]}


def test_a_batch_over_the_limit_is_too_large_before_any_event_is_read():
    with pytest.raises(PayloadTooLarge, match="at most 1000"):
        ol.parse_events([{"not": "an event"}] * 1001, validate)
    with pytest.raises(ValidationFailed, match="empty"):
        ol.parse_events([], validate)
    assert len(ol.parse_events([client_event()] * 1000, validate)) == 1000


def test_the_idempotency_key_is_run_type_and_time():
    [a] = ol.parse_events(client_event(), validate)
    same = ol.RunEvent.model_validate({**client_event(), "run": {"runId": str(a.run.runId)}})
    later = ol.RunEvent.model_validate(
        {**client_event(), "run": {"runId": str(a.run.runId)}, "eventTime": "2026-12-03T10:00:01Z"}
    )
    start = ol.RunEvent.model_validate(
        {**client_event(), "run": {"runId": str(a.run.runId)}, "eventType": "START"}
    )
    assert ol.event_key(a) == ol.event_key(same)
    assert len({ol.event_key(a), ol.event_key(later), ol.event_key(start)}) == 3


def test_names_longer_than_watcher_holds_are_refused_with_where():
    with pytest.raises(ValidationFailed, match=r"outputs\[1\]"):
        ol.qualified("n" * 100, "x" * 60, "event: outputs[1]")
    assert ol.qualified(" Postgres://DB ", "Raw.Orders", "x") == "postgres://db/raw.orders"


def test_datasets_watcher_would_refuse_are_422_before_anything_is_written():
    [event] = ol.parse_events(client_event(), validate)
    request = ol.lineage_request(event)
    assert [a.name for a in request.source_addresses] == ["postgres://db/raw.orders"]
    assert request.target_addresses[0].address_metadata == {
        "column_lineage": {"total": [{"dataset": "postgres://db/raw.orders", "field": "amount"}]}
    }
    huge = client_event()
    huge["outputs"][0]["facets"]["columnLineage"]["fields"] = {
        f"column_{n}": {
            "inputFields": [{"namespace": "postgres://db", "name": "raw.orders", "field": "x" * 100}]
        }
        for n in range(1000)
    }
    [too_big] = ol.parse_events(huge, validate)
    with pytest.raises(ValidationFailed, match="event 3: its datasets cannot be recorded as lineage"):
        ol.lineage_request(too_big, "event 3")
    ingest = ol.OpenLineageIngest(None, None, None, None)  # nothing is reached
    with pytest.raises(ValidationFailed, match="event 1"):
        ingest.ingest("p", [event, too_big])


def test_the_packing_counts_a_changes_items_as_its_operations_make_them():
    """The bulk writer's look-ahead counts items without rendering them: the count must be what
    `_operations` (with the closure rows) makes, or a pipeline's runs could overflow a transaction."""
    import pendulum

    from sluice.domain.executions import Run
    from sluice.store import openlineage as marks
    from sluice.store.table import Table

    start = pendulum.datetime(2026, 12, 3, 10, tz="UTC")
    writer = marks.OpenLineageMarks(Table("t", client=object()))

    def created(run: Run, claims: list[str]) -> ol.RunChange:
        mapped = ol.MappedRun(run.id, run.pipeline_id, run.start_date, events=frozenset({"k"}))
        return ol.RunChange("r", claims=claims, mapping_events=["k"], run=run, created=True, mapped=mapped)

    root = Run(id=1, pipeline_id=7, status="running", start_date=start)
    deep = Run(id=5, pipeline_id=7, status="running", start_date=start, parent_id=4, ancestors=(4, 3, 2, 1))
    ended = Run(id=9, pipeline_id=7, status="success", start_date=start, end_date=start.add(seconds=1))
    changes = [
        created(root, []),
        created(root, ["a", "b"]),
        created(deep, ["c"]),
        ol.RunChange("r", claims=["d"], mapping_events=["e"], run=ended, seen_end_count=0),
        ol.RunChange("r", claims=["f", "g", "h"]),
    ]
    for change in changes:
        own, closure, _size = writer._operations("p", change, set())
        assert marks._item_count(change) == len(own) + len(closure)
