"""Posting live events to WebSocket connections through API Gateway's management API. Its endpoint
is the WebSocket stage's https URL, given as botocore's own `AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI`
(template.yaml); the local stack points it at its gateway, which serves `/@connections/{id}`."""

from __future__ import annotations

import json
from typing import Any

from sluice import aws
from sluice.domain.live import Gone


class ConnectionPoster:
    def post(self, connection_id: str, message: dict[str, Any]) -> None:
        client = aws.client("apigatewaymanagementapi")
        try:
            client.post_to_connection(
                ConnectionId=connection_id, Data=json.dumps(message, default=str).encode()
            )
        except client.exceptions.GoneException as exc:
            raise Gone(connection_id) from exc
