"""Every key shape of the Sluice table, in one module.

Tenancy: every partition key of tenant data starts with `P#<project>#`, so every access is a
Query or GetItem inside one project. Integer ids are zero-padded in sort keys so lexical order
is numeric order. Partitions hold one collection each (a list is one Query on its partition).
"""

from __future__ import annotations

ID_WIDTH = 12
PROJECTS = "PROJECTS"  # registry of projects, for scheduled jobs that visit every tenant


def pad(number: int) -> str:
    return f"{number:0{ID_WIDTH}d}"


def project(project_id: str) -> str:
    return f"P#{project_id}"


# -- counters and name claims -----------------------------------------------------------------
def counter(project_id: str, kind: str) -> tuple[str, str]:
    """Atomic id counter of one kind of object in a project."""
    return project(project_id), f"COUNTER#{kind}"


def name_claim(project_id: str, kind: str, name: str) -> tuple[str, str]:
    """Uniqueness guard: one item per (kind, case-folded name); holds the owner's id."""
    return f"{project(project_id)}#NAMES#{kind}", name.strip().casefold()


def project_registry(project_id: str) -> tuple[str, str]:
    return PROJECTS, project_id


# -- registry (Watcher) -----------------------------------------------------------------------
def pipelines(project_id: str) -> str:
    return f"{project(project_id)}#PIPELINES"


def pipeline(project_id: str, pipeline_id: int) -> tuple[str, str]:
    return pipelines(project_id), f"PL#{pad(pipeline_id)}"


def pipeline_types(project_id: str) -> str:
    return f"{project(project_id)}#PIPELINE_TYPES"


def pipeline_type(project_id: str, type_id: int) -> tuple[str, str]:
    return pipeline_types(project_id), f"PT#{pad(type_id)}"


def addresses(project_id: str) -> str:
    return f"{project(project_id)}#ADDRESSES"


def address(project_id: str, address_id: int) -> tuple[str, str]:
    return addresses(project_id), f"AD#{pad(address_id)}"


def address_types(project_id: str) -> str:
    return f"{project(project_id)}#ADDRESS_TYPES"


def address_type(project_id: str, type_id: int) -> tuple[str, str]:
    return address_types(project_id), f"AT#{pad(type_id)}"


# -- pipeline definitions (SPEC 3): what hangs off a pipeline item ------------------------------
def pipelines_with_status(project_id: str, status: str) -> str:
    """GSI1 partition of a project's pipelines in one status; GSI1SK = the pipeline's SK."""
    return f"{pipelines(project_id)}#STATUS#{status}"


def pipeline_counts(project_id: str) -> tuple[str, str]:
    """A project's pipeline counts (`total` and one per status), moved by every create, delete and
    status change in the same transaction, so list totals never count items."""
    return project(project_id), "STATS#pipelines"


def pipeline_revisions(project_id: str, pipeline_id: int) -> str:
    return f"{project(project_id)}#PL#{pad(pipeline_id)}#REVISIONS"


def pipeline_revision(project_id: str, pipeline_id: int, revision: int) -> tuple[str, str]:
    return pipeline_revisions(project_id, pipeline_id), f"REV#{pad(revision)}"


def pipeline_runs(project_id: str, pipeline_id: int) -> str:
    """A pipeline's runs by start (SK = run_start_key): its last run and its whole history are Queries."""
    return f"{project(project_id)}#PL#{pad(pipeline_id)}#RUNS"


def pipeline_run(project_id: str, pipeline_id: int, start_sortable: str, run_id: int) -> tuple[str, str]:
    return pipeline_runs(project_id, pipeline_id), run_start_key(start_sortable, run_id)


def pipeline_firings(project_id: str, pipeline_id: int) -> str:
    """Times a pipeline's schedule fired; SK = the scheduled minute (a repeated delivery is one item)."""
    return f"{project(project_id)}#PL#{pad(pipeline_id)}#FIRINGS"


def pipeline_firing(project_id: str, pipeline_id: int, scheduled_sortable: str) -> tuple[str, str]:
    return pipeline_firings(project_id, pipeline_id), scheduled_sortable


# -- address lineage ----------------------------------------------------------------------------
def lineage_edges_of_pipeline(project_id: str, pipeline_id: int) -> str:
    """Direct edges a pipeline declared; SK = edge(source, target)."""
    return f"{project(project_id)}#LINEAGE#PL#{pad(pipeline_id)}"


def lineage_edge(source_id: int, target_id: int) -> str:
    return f"E#{pad(source_id)}#{pad(target_id)}"


def lineage_inbound(project_id: str, target_id: int) -> str:
    """Direct edges into an address, one item per (source, pipeline); SK = inbound_edge(...)."""
    return f"{project(project_id)}#LINEAGE#IN#{pad(target_id)}"


def inbound_edge(source_id: int, pipeline_id: int) -> str:
    return f"{pad(source_id)}#{pad(pipeline_id)}"


def lineage_upstream(project_id: str, address_id: int) -> str:
    """Closure: every ancestor of an address, SK = padded ancestor id, with its depth."""
    return f"{project(project_id)}#LINEAGE#UP#{pad(address_id)}"


def lineage_downstream(project_id: str, address_id: int) -> str:
    """Closure: every descendant of an address, SK = padded descendant id, with its depth."""
    return f"{project(project_id)}#LINEAGE#DOWN#{pad(address_id)}"


def lineage_datasets(project_id: str) -> str:
    """What each pipeline last recorded reading and writing (one item per pipeline, for
    `/api/lineage`); SK = PL#<pipeline>."""
    return f"{project(project_id)}#LINEAGE#DATASETS"


def pipeline_datasets(project_id: str, pipeline_id: int) -> tuple[str, str]:
    return lineage_datasets(project_id), f"PL#{pad(pipeline_id)}"


def lineage_lock(project_id: str) -> tuple[str, str]:
    return project(project_id), "LOCK#lineage"


# -- API keys -------------------------------------------------------------------------------
def api_keys(project_id: str) -> str:
    return f"{project(project_id)}#API_KEYS"


def api_key(project_id: str, key_id: str) -> tuple[str, str]:
    return api_keys(project_id), f"K#{key_id}"


def api_key_hash_index(key_hash: str) -> tuple[str, str]:
    """GSI1 key of an API key item: the authorizer finds a key by its SHA-256 alone."""
    return f"KEYHASH#{key_hash}", "KEY"


# -- project settings -------------------------------------------------------------------------
def project_settings(project_id: str) -> tuple[str, str]:
    """The one item holding a project's settings (`max_concurrent_runs`, ...)."""
    return project(project_id), "SETTINGS"


# -- runs (Watcher executions) ------------------------------------------------------------------
# A run's own partition holds the run item, the closure rows of its descendants, its anomaly
# results and its timeliness record: deleting a run is one Query of that partition.
RUN_ITEM = "RUN"
RUN_DESCENDANT_PREFIX = "DESC#"
RUN_ANOMALY_PREFIX = "ANOMALY#"
RUN_TIMELINESS = "TIMELINESS"
DEPTH_WIDTH = 6


def run_partition(project_id: str, run_id: int) -> str:
    return f"{project(project_id)}#RUN#{pad(run_id)}"


def run(project_id: str, run_id: int) -> tuple[str, str]:
    return run_partition(project_id, run_id), RUN_ITEM


def run_descendant(project_id: str, ancestor_id: int, depth: int, descendant_id: int) -> tuple[str, str]:
    """Closure row in the ancestor's partition: one Query lists all descendants, or one depth."""
    return run_partition(project_id, ancestor_id), f"{run_descendants_at(depth)}{pad(descendant_id)}"


def run_descendants_at(depth: int) -> str:
    """Sort-key prefix of the descendants `depth` levels below a run (1 = direct children)."""
    return f"{RUN_DESCENDANT_PREFIX}{depth:0{DEPTH_WIDTH}d}#"


def run_hour_bucket(project_id: str, pipeline_id: int, hour: int) -> str:
    """GSI1 partition of a pipeline's successful ended runs that started in one UTC hour of day.

    Anomaly detection reads only this bucket, from the lookback start on (GSI1SK = run_end_key),
    so its cost follows the window, not the pipeline's history.
    """
    return f"{project(project_id)}#RUNHOUR#{pad(pipeline_id)}#{hour:02d}"


def run_end_key(end_sortable: str, run_id: int) -> str:
    return f"{end_sortable}#{pad(run_id)}"


def run_end_of(end_key: str) -> str:
    """The sortable end date a `run_end_key` begins with."""
    return end_key.partition("#")[0]


def run_start_month(project_id: str, month: str) -> str:
    """GSI2 partition of the runs that started in one month (`YYYY-MM`); GSI2SK = run_start_key."""
    return f"{project(project_id)}#RUNSTART#{month}"


def run_start_key(start_sortable: str, run_id: int) -> str:
    return f"{start_sortable}#{pad(run_id)}"


def run_months(project_id: str) -> str:
    """Months that have runs (SK `YYYY-MM`): where timeliness and log cleanup look."""
    return f"{project(project_id)}#RUNMONTHS"


# -- anomaly detection ---------------------------------------------------------------------------
def anomaly_rules(project_id: str) -> str:
    return f"{project(project_id)}#ANOMALY_RULES"


def anomaly_rule(project_id: str, rule_id: int) -> tuple[str, str]:
    return anomaly_rules(project_id), f"AR#{pad(rule_id)}"


def anomaly_rules_of_pipeline(project_id: str, pipeline_id: int) -> str:
    """GSI1 partition of a pipeline's rules; GSI1SK = metric field."""
    return f"{project(project_id)}#ANOMALY_RULES#PL#{pad(pipeline_id)}"


def anomaly_rule_claim(project_id: str, pipeline_id: int, metric_field: str) -> tuple[str, str]:
    """One rule per (pipeline, metric): the claim holds the owning rule's id."""
    return name_claim(project_id, "anomaly_rule", f"{pad(pipeline_id)}#{metric_field}")


def anomaly_result(project_id: str, run_id: int, metric_field: str) -> tuple[str, str]:
    return run_partition(project_id, run_id), f"{RUN_ANOMALY_PREFIX}{metric_field}"


def anomaly_results_of_pipeline(project_id: str, pipeline_id: int) -> str:
    """GSI1 partition of a pipeline's anomaly results; GSI1SK = detected_at#run#metric."""
    return f"{project(project_id)}#ANOMALIES#PL#{pad(pipeline_id)}"


# -- alerts -----------------------------------------------------------------------------------
def alerts(project_id: str) -> str:
    """Every alert of a project; SK = alert(...) so a descending Query lists newest first."""
    return f"{project(project_id)}#ALERTS"


def alert(project_id: str, alert_id: int) -> tuple[str, str]:
    return alerts(project_id), f"AL#{pad(alert_id)}"


def alerts_of_type(project_id: str, alert_type: str) -> str:
    """GSI1 partition: a project's alerts of one type; GSI1SK = the alert's SK."""
    return f"{project(project_id)}#ALERTS#TYPE#{alert_type}"


def alerts_of_pipeline(project_id: str, pipeline_id: int) -> str:
    """GSI2 partition: a project's alerts about one pipeline; GSI2SK = the alert's SK."""
    return f"{project(project_id)}#ALERTS#PL#{pad(pipeline_id)}"


def alert_once(project_id: str, dedupe_key: str) -> tuple[str, str]:
    """Claim that an alert with this key was raised (expires through the table's TTL)."""
    return f"{project(project_id)}#ALERT_ONCE", dedupe_key


# -- timeliness and freshness records -------------------------------------------------------------
def timeliness_record(project_id: str, run_id: int) -> tuple[str, str]:
    """At most one per run, kept in the run's partition."""
    return run_partition(project_id, run_id), RUN_TIMELINESS


def timeliness_records(project_id: str) -> str:
    """GSI1 partition of a project's timeliness records; GSI1SK = recorded_at#run."""
    return f"{project(project_id)}#TIMELINESS"


def freshness_records(project_id: str) -> str:
    """A project's freshness records ordered by last DML time (log cleanup reads a prefix)."""
    return f"{project(project_id)}#FRESHNESS"


def freshness_record(project_id: str, last_dml_sortable: str, pipeline_id: int) -> tuple[str, str]:
    """One per (pipeline, last DML time)."""
    return freshness_records(project_id), f"{last_dml_sortable}#{pad(pipeline_id)}"


def freshness_records_of_pipeline(project_id: str, pipeline_id: int) -> str:
    """GSI1 partition of one pipeline's freshness records; GSI1SK = last DML time."""
    return f"{project(project_id)}#FRESHNESS#PL#{pad(pipeline_id)}"


# -- catalog: connectors, schemas, variables (seed 003's references, seed 001's variables) -------
# Names are unique per project through name_claim(project, "connector"|"schema", name).
def connectors(project_id: str) -> str:
    return f"{project(project_id)}#CONNECTORS"


def connector(project_id: str, connector_id: int) -> tuple[str, str]:
    return connectors(project_id), f"CN#{pad(connector_id)}"


def schemas(project_id: str) -> str:
    return f"{project(project_id)}#SCHEMAS"


def schema(project_id: str, schema_id: int) -> tuple[str, str]:
    return schemas(project_id), f"SC#{pad(schema_id)}"


def variables(project_id: str) -> str:
    """A project's variables; SK = variable(...), so a Query lists them in key order."""
    return f"{project(project_id)}#VARIABLES"


def variable(project_id: str, key: str) -> tuple[str, str]:
    # Variable keys are case-sensitive (`${var.KEY}` is matched as written).
    return variables(project_id), f"VAR#{key}"


def catalog_lease(project_id: str, kind: str, ident: str) -> tuple[str, str]:
    """A short lease on one connector or variable while its secret and its item change together."""
    return f"{project(project_id)}#LEASES", f"{kind}#{ident}"


# -- the run engine: node runs, active runs, trigger idempotency ---------------------------------
RUN_NODE_PREFIX = "NODE#"


def run_node(project_id: str, run_id: int, node_id: str) -> tuple[str, str]:
    """A node run, in its run's partition (a run's node runs are one Query)."""
    return run_partition(project_id, run_id), f"{RUN_NODE_PREFIX}{node_id}"


def active_runs(project_id: str) -> str:
    """A project's runs that are pending or running; SK = padded run id. The reconciler and the
    active-run count read this partition instead of scanning runs."""
    return f"{project(project_id)}#ACTIVE_RUNS"


def active_run(project_id: str, run_id: int) -> tuple[str, str]:
    return active_runs(project_id), pad(run_id)


def run_trigger_claim(project_id: str, idempotency_key: str) -> tuple[str, str]:
    """One run per (project, Idempotency-Key); holds the run id and the first response."""
    return f"{project(project_id)}#RUN_TRIGGERS", idempotency_key


def flow_child_claim(project_id: str, parent_id: int, level: int, pipeline_id: int) -> tuple[str, str]:
    """One child run per (flow parent, level, pipeline), claimed in the child's create: the
    hand-over and a reconciler restarting a lost level can never both start it."""
    return (
        f"{project(project_id)}#FLOW_CHILDREN",
        f"{pad(parent_id)}#{level:0{DEPTH_WIDTH}d}#{pad(pipeline_id)}",
    )


# -- flows: recipes and zones (issue 14) ---------------------------------------------------------
# Model names are compared without case, as datasets are (one dataset per lowercase name).
def recipes(project_id: str) -> str:
    """A project's recipes, one item each (SK = lowercase model name): the list is one Query."""
    return f"{project(project_id)}#RECIPES"


def recipe(project_id: str, model_name: str) -> tuple[str, str]:
    return recipes(project_id), model_name.lower()


def recipe_revisions(project_id: str, model_name: str) -> str:
    return f"{project(project_id)}#RECIPE_REVISIONS#{model_name.lower()}"


def recipe_revision(project_id: str, model_name: str, revision: int) -> tuple[str, str]:
    return recipe_revisions(project_id, model_name), pad(revision)


def zones(project_id: str) -> str:
    return f"{project(project_id)}#ZONES"


def zone(project_id: str, zone_id: int) -> tuple[str, str]:
    return zones(project_id), pad(zone_id)


def zone_members(project_id: str) -> str:
    """Which zone each model sits in (SK = lowercase model name); GSI1 groups them by zone."""
    return f"{project(project_id)}#ZONE_MEMBERS"


def zone_member(project_id: str, model_name: str) -> tuple[str, str]:
    return zone_members(project_id), model_name.lower()


def members_of_zone(project_id: str, zone_id: int) -> str:
    """GSI1PK of a zone's members: deleting a zone unassigns them with one Query."""
    return f"{project(project_id)}#ZONE#{pad(zone_id)}"


def ai_recipes(project_id: str) -> str:
    """A project's AI recipes (SK = padded id); a name claim per (model_name, recipe_type)."""
    return f"{project(project_id)}#AI_RECIPES"


def ai_recipe(project_id: str, recipe_id: int) -> tuple[str, str]:
    return ai_recipes(project_id), pad(recipe_id)


# -- alert states and data quality (issue 13) ---------------------------------------------------------
ALERT_STATUS_INDEX = "Status"  # GSI keyed StatusPK/StatusSK (template.yaml)


def alerts_in_status(project_id: str, status: str) -> str:
    """Status-index partition: a project's alerts in one state (active, dismissed, resolved);
    StatusSK = the alert's SK, so the active inbox never reads resolved history."""
    return f"{project(project_id)}#ALERTS#STATUS#{status}"


def quality_rules(project_id: str) -> str:
    """A project's data-quality rules; SK = DQR#<id>."""
    return f"{project(project_id)}#DQRULES"


def quality_rule(project_id: str, rule_id: int) -> tuple[str, str]:
    return quality_rules(project_id), f"DQR#{pad(rule_id)}"


def quality_rules_of_dataset(project_id: str, dataset_name: str) -> str:
    """GSI1 partition: the rules of one dataset (one Query per checked write); GSI1SK = the rule's SK."""
    return f"{project(project_id)}#DQRULES#DS#{dataset_name}"


def quality_checks(project_id: str, rule_id: int) -> str:
    """A rule's checks, one per run that wrote its dataset; SK = CHK#<checked_at>#<run>."""
    return f"{project(project_id)}#DQCHECKS#{pad(rule_id)}"


def dataset_states(project_id: str) -> str:
    """One item per dataset Sluice wrote: its last refresh, rows and the run; SK = DS#<name>."""
    return f"{project(project_id)}#DATASETS"


def dataset_state(project_id: str, dataset_name: str) -> tuple[str, str]:
    return dataset_states(project_id), f"DS#{dataset_name}"


def dataset_writes(project_id: str) -> str:
    """Every dataset write in time order (row audit); SK = W#<at>#<run>#<name>."""
    return f"{project(project_id)}#DSWRITES"


def dbt_status(project_id: str) -> tuple[str, str]:
    """The latest finished run of SQL models (a Sluice run or an uploaded run_results.json)."""
    return project(project_id), "DBT_STATUS"


# -- OpenLineage in (issue 15) -------------------------------------------------------------------
def openlineage(project_id: str) -> str:
    """The partition of a project's OpenLineage marks: events applied and runs mapped."""
    return f"{project(project_id)}#OPENLINEAGE"


def openlineage_event(project_id: str, key: str) -> tuple[str, str]:
    return openlineage(project_id), f"EVENT#{key}"


def openlineage_run(project_id: str, run_id: str) -> tuple[str, str]:
    return openlineage(project_id), f"RUN#{run_id}"


# -- the platform (issue 12): maintained counters, per-date run marks ----------------------------
def run_days(project_id: str) -> str:
    """Per-UTC-day run counters (SK `YYYY-MM-DD`, the day the run started): `total` and one count
    per status, moved in the transaction of every run status change; `failed#<pipeline id>` too,
    so the calendar and the dashboard read O(days) items whatever the number of runs."""
    return f"{project(project_id)}#RUNDAYS"


def run_day(project_id: str, day: str) -> tuple[str, str]:
    return run_days(project_id), day


def last_runs(project_id: str) -> str:
    """Each pipeline's last finished run (SK = padded pipeline id), written by the run's end."""
    return f"{project(project_id)}#LASTRUNS"


def last_run(project_id: str, pipeline_id: int) -> tuple[str, str]:
    return last_runs(project_id), pad(pipeline_id)


def dated_runs(project_id: str, pipeline_id: int) -> str:
    """A pipeline's latest finished run per `params.date` (SK `YYYY-MM-DD`): what a backfill's
    `reprocess: failed | missing` and dry run read, one Query for a whole range."""
    return f"{project(project_id)}#DATEDRUNS#{pad(pipeline_id)}"


def dated_run(project_id: str, pipeline_id: int, day: str) -> tuple[str, str]:
    return dated_runs(project_id, pipeline_id), day


# -- live events: open WebSocket connections ---------------------------------------------------------
def live_connections(project_id: str) -> str:
    """A project's open WebSocket connections (SK = connection id); items expire by TTL."""
    return f"{project(project_id)}#LIVE"


def live_connection(project_id: str, connection_id: str) -> tuple[str, str]:
    return live_connections(project_id), connection_id


def live_connection_owner(connection_id: str) -> tuple[str, str]:
    """Which project a connection belongs to (a `$disconnect` names only the connection). Not under
    a project: the connection id is API Gateway's, and the item holds no tenant data."""
    return f"LIVECONN#{connection_id}", "OWNER"
