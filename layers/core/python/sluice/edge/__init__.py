"""The edge: FastAPI apps behind Mangum, principal extraction, and domain-error mapping."""
