"""The run engine's facade: one object over the ports, its use cases grouped by concern.

| concern                | module       | what it does                                               |
|------------------------|--------------|------------------------------------------------------------|
| trigger, resume        | trigger.py   | a run written pending (idempotently) and queued             |
| dispatch               | dispatch.py  | the run queue's consumer: a slot taken, the execution started |
| state-machine tasks    | tasks.py     | PlanRun, NextStep, ExecuteNode                              |
| finish, cancel         | finish.py    | the idempotent end, the slot given back, execution.ended     |
| reconcile              | reconcile.py | what a dead Lambda or a lost message left behind             |
| flow runs (seed 000)   | flows.py     | a parent run over the flow graph, level by level            |
| reads                  | reads.py     | runs, node runs, logs, preview, profile, details             |
| dry runs               | dry_run.py   | every node on its first rows, nothing written               |
| backfills (seed 002)   | backfill.py  | a parent and a child per date, released by the Backfill machine |

Each concern is a mixin over EngineCore (core.py: the ports, the lookups, the slot release); the
records it reads are record.py's, the ports ports.py's, the exceptions adapters raise errors.py's.
"""

from __future__ import annotations

from sluice.domain.run_engine.backfill import Backfills
from sluice.domain.run_engine.dispatch import Dispatching
from sluice.domain.run_engine.dry_run import DryRuns
from sluice.domain.run_engine.finish import Finishing
from sluice.domain.run_engine.flows import FlowRuns
from sluice.domain.run_engine.reads import RunReads
from sluice.domain.run_engine.reconcile import Reconciling
from sluice.domain.run_engine.tasks import StateMachineTasks
from sluice.domain.run_engine.trigger import Triggering


class RunEngine(
    Triggering,
    Dispatching,
    StateMachineTasks,
    Finishing,
    Reconciling,
    FlowRuns,
    RunReads,
    DryRuns,
    Backfills,
):
    """The run engine (constructor: EngineCore's ports, clock, revision-graph cache)."""
