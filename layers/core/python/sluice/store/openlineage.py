"""The OpenLineage ingest's marks: which events were applied (idempotency) and which Watcher
execution stands for each OpenLineage run. Both are conditional writes of one item each."""

from __future__ import annotations

from sluice import timeutil
from sluice.domain.openlineage import MappedRun
from sluice.store import keys
from sluice.store.table import Condition, ConditionFailed, Table, TransactionCancelled

ABSENT = Condition("attribute_not_exists(PK)")
MAX_TRANSACTION_ITEMS = 100


def _mapped(item: dict) -> MappedRun:
    return MappedRun(
        execution_id=int(item["execution_id"]),
        pipeline_id=int(item["pipeline_id"]),
        start_date=timeutil.parse_instant(item["start_date"], "start_date"),
        ended=bool(item.get("ended", False)),
    )


class OpenLineageMarks:
    def __init__(self, table: Table):
        self.table = table

    def claim_events(self, project: str, event_keys: list[str]) -> set[str]:
        """Conditional puts, 100 to a transaction; a transaction that a claimed key cancels is
        retried without the keys its cancellation reasons name."""
        claimed: set[str] = set()
        for start in range(0, len(event_keys), MAX_TRANSACTION_ITEMS):
            pending = event_keys[start : start + MAX_TRANSACTION_ITEMS]
            while pending:
                operations = [self.table.put_op(self._event_item(project, k), ABSENT) for k in pending]
                try:
                    self.table.transact(operations)
                except TransactionCancelled as exc:
                    taken = {
                        k
                        for k, reason in zip(pending, exc.reasons, strict=False)
                        if reason == "ConditionalCheckFailed"
                    }
                    if not taken:
                        raise
                    pending = [k for k in pending if k not in taken]
                    continue
                claimed.update(pending)
                break
        return claimed

    @staticmethod
    def _event_item(project: str, key: str) -> dict[str, str]:
        pk, sk = keys.openlineage_event(project, key)
        return {"PK": pk, "SK": sk, "kind": "openlineage_event"}

    def release_event(self, project: str, key: str) -> None:
        self.table.delete(*keys.openlineage_event(project, key))

    def mapped_run(self, project: str, run_id: str) -> MappedRun | None:
        item = self.table.get(*keys.openlineage_run(project, run_id))
        return _mapped(item) if item else None

    def mapped_runs(self, project: str, run_ids: list[str]) -> dict[str, MappedRun]:
        found = self.table.batch_get([keys.openlineage_run(project, r) for r in run_ids], consistent=True)
        return {item["SK"].removeprefix("RUN#"): _mapped(item) for item in found}

    def map_run(self, project: str, run_id: str, mapped: MappedRun) -> MappedRun:
        """Record the mapping unless another request did first; the mapping that holds is returned."""
        pk, sk = keys.openlineage_run(project, run_id)
        item = {
            "PK": pk,
            "SK": sk,
            "kind": "openlineage_run",
            "execution_id": mapped.execution_id,
            "pipeline_id": mapped.pipeline_id,
            "start_date": timeutil.iso(mapped.start_date),
            "ended": False,
        }
        try:
            self.table.put(item, ABSENT)
        except ConditionFailed:
            winner = self.mapped_run(project, run_id)
            if winner is not None:
                return winner
            raise
        return mapped

    def mark_ended(self, project: str, run_id: str) -> None:
        pk, sk = keys.openlineage_run(project, run_id)
        self.table.update(pk, sk, set_={"ended": True}, return_values="NONE")
