"""Sluice: data-pipeline orchestration and observability, serverless on AWS."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("sluice")
except _metadata.PackageNotFoundError:  # running from the Lambda layer, not an installed dist
    __version__ = "0.1.0"
