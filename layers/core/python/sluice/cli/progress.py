"""`sluice run --wait`'s live display: one row per node with its status, rows and time (rich)."""

from __future__ import annotations

from typing import Any

STYLE_OF_STATUS = {
    "success": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "pending": "dim",
    "skipped": "dim",
    "blocked": "yellow",
}


class NodeProgress:
    """A rich Live table on stderr, redrawn on each change the SDK's wait reports; off when
    `enabled` is false (not a terminal, --output json, --no-progress)."""

    def __init__(self, run_id: str, enabled: bool = True):
        self.run_id = run_id
        self.enabled = enabled
        self._live: Any = None

    def __enter__(self) -> NodeProgress:
        if self.enabled:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._render(None), console=Console(stderr=True), refresh_per_second=8)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def update(self, info: Any) -> None:
        if self._live is not None:
            self._live.update(self._render(info))

    def _render(self, info: Any) -> Any:
        from rich.table import Table

        status = info.status if info is not None else "pending"
        table = Table(
            title=f"run {self.run_id}: [{STYLE_OF_STATUS.get(status, 'white')}]{status}[/]",
            title_justify="left",
            box=None,
            header_style="bold",
        )
        for column in ("node", "status", "rows", "ms"):
            table.add_column(column)
        for node in (info.node_runs or []) if info is not None else []:
            style = STYLE_OF_STATUS.get(node.status, "white")
            table.add_row(
                node.node_id,
                f"[{style}]{node.status}[/]",
                "" if node.row_count is None else str(node.row_count),
                "" if node.duration_ms is None else str(node.duration_ms),
            )
        return table
