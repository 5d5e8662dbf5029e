"""Authentication and authorization: API keys, JWTs, roles, and the principal of a request."""
