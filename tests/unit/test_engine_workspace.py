"""The node workspace: sandboxed DuckDB databases in a small pool, a fresh connection and folder per
node, nothing of one node left for the next, and nothing left behind by threads that end."""

from __future__ import annotations

import threading

import pytest

from sluice.engine import NodeFailed
from sluice.engine import workspace as module
from sluice.engine.workspace import Workspace


def test_consecutive_workspaces_share_the_database_but_not_views_or_folders():
    # Given a node that made a view and a file
    with Workspace() as first:
        first.create_view("orders", "SELECT 1 AS id")
        folder = first.root
        (folder / "left.txt").write_text("secret")
        database = first.database
    # When the next node opens its workspace
    with Workspace() as second:
        # Then it runs on the same database, in a new folder, and sees neither the view nor the file
        assert second.database is database
        assert second.root != folder and not folder.exists()
        with pytest.raises(NodeFailed, match="orders"):
            second.execute("SELECT * FROM orders")
        assert second.execute(f"SELECT content FROM read_text('{folder / 'left.txt'}')") == []


def test_the_sandbox_holds_on_a_reused_database():
    with Workspace():
        pass
    with Workspace() as workspace:
        with pytest.raises(NodeFailed, match="Permission Error"):
            workspace.execute("SELECT * FROM read_text('/proc/self/environ')")
        with pytest.raises(NodeFailed, match="locked"):
            workspace.execute("SET enable_external_access = true")


def test_a_pooled_database_keeps_no_cache_of_the_files_its_nodes_read():
    # Given nodes, one after another on one database, each writing and reading a file of its own
    module.close_idle_databases()
    for _ in range(20):
        with Workspace() as workspace:
            path = workspace.root / "out.parquet"
            workspace.execute(f"COPY (SELECT range AS a FROM range(100)) TO '{path}' (FORMAT parquet)")
            assert workspace.value(f"SELECT count(*) FROM read_parquet('{path}')") == 100
    # Then DuckDB holds nothing of them once they are gone (its external file cache is off)
    with Workspace() as workspace:
        cached = workspace.value(
            "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() "
            "WHERE tag IN ('OBJECT_CACHE', 'EXTERNAL_FILE_CACHE')"
        )
        assert cached == 0


def test_concurrent_workspaces_get_databases_of_their_own():
    with Workspace() as a, Workspace() as b:
        assert a.database is not b.database
        assert a.database.root != b.database.root


def test_threads_that_end_leave_no_database_or_folder_behind():
    """Each node on a new thread (as the local stack runs them): the pool bounds what stays open."""
    module.close_idle_databases()
    roots = set()

    def node() -> None:
        with Workspace() as workspace:
            roots.add(workspace.database.root)
            workspace.execute("SELECT 1")

    for _ in range(3):
        threads = [threading.Thread(target=node) for _ in range(module.POOL_SIZE + 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    still_there = {root for root in roots if root.exists()}
    assert len(still_there) <= module.POOL_SIZE
    assert module.close_idle_databases() == len(still_there)
    assert not any(root.exists() for root in roots)


def test_an_unusable_database_is_replaced():
    # Given an idle database closed under the pool (as DuckDB invalidates one after a fatal error)
    module.close_idle_databases()
    with Workspace() as first:
        broken = first.database
    broken.connection.close()
    # When the next node opens its workspace, then it runs on a new database
    with Workspace() as workspace:
        assert workspace.value("SELECT 42") == 42
        assert workspace.database is not broken
    assert not broken.root.exists()


def test_a_database_whose_folder_vanished_is_replaced():
    module.close_idle_databases()
    with Workspace() as first:
        old = first.database
    module.shutil.rmtree(old.root)
    with Workspace() as workspace:
        assert workspace.value("SELECT 1") == 1
        assert workspace.database is not old and workspace.database.root.is_dir()


def test_folders_of_dead_processes_are_removed_and_live_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(module.tempfile, "gettempdir", lambda: str(tmp_path))
    dead = tmp_path / f"{module.ROOT_PREFIX}999999999-abc"
    alive = tmp_path / f"{module.ROOT_PREFIX}{module.os.getpid()}-def"
    dead.mkdir()
    alive.mkdir()
    assert module.remove_abandoned_folders() == 1
    assert not dead.exists() and alive.exists()
