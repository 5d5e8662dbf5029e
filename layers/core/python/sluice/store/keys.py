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
