"""The node workspace: one sandboxed DuckDB per thread, a fresh connection and folder per node, and
nothing of one node left for the next."""

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
        database_root = module._database().root
    # When the next node of the thread opens its workspace
    with Workspace() as second:
        # Then it runs on the same database, in a new folder, and sees neither the view nor the file
        assert module._database().root == database_root
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


def test_threads_get_databases_of_their_own():
    roots: dict[str, object] = {}

    def node(name: str) -> None:
        with Workspace():
            roots[name] = module._database().root

    threads = [threading.Thread(target=node, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert roots["a"] != roots["b"]


def test_an_unusable_database_is_replaced():
    # Given the thread's database closed under it (as DuckDB invalidates one after a fatal error)
    with Workspace():
        pass
    broken = module._database()
    broken.connection.close()
    # When the next node opens its workspace, then it runs on a new database
    with Workspace() as workspace:
        assert workspace.value("SELECT 42") == 42
        assert module._database() is not broken
    assert not broken.root.exists()


def test_a_database_whose_folder_vanished_is_replaced():
    with Workspace():
        pass
    old = module._database()
    module.shutil.rmtree(old.root)
    with Workspace() as workspace:
        assert workspace.value("SELECT 1") == 1
        assert module._database() is not old and module._database().root.is_dir()
