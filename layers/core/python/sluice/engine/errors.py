"""The one error a node run ends with: why it failed, in words a pipeline author can act on.

It is the run engine's (the domain defines what its adapters raise to it); the node engine raises
it from here, as it always has.
"""

from __future__ import annotations

from sluice.domain.run_engine.errors import NodeFailed, clean_message

__all__ = ["NodeFailed", "clean_message"]
