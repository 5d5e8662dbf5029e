"""Reading template.yaml: CloudFormation short-form tags, resources by type, HttpApi routes, schedules."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[5]
TEMPLATE_PATH = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads `!Ref`, `!GetAtt`, `!Sub`... as their long `Fn::` forms."""


def _short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    tag = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag == "Fn::GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {tag: value}


_CfnLoader.add_multi_constructor("!", _short_form)


def load_template(path: Path | str = TEMPLATE_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r.get("Type") == resource_type}


def table_definition(template: dict[str, Any], logical_id: str = "Table") -> dict[str, Any]:
    """CreateTable parameters from the template's table: key schema, attributes and GSIs."""
    props = template["Resources"][logical_id]["Properties"]
    params: dict[str, Any] = {
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        params["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return params


@dataclass(frozen=True)
class Route:
    function: str  # logical id of the function
    method: str
    path: str  # API Gateway path with {param} / {proxy+}
    authorized: bool


def http_routes(template: dict[str, Any]) -> list[Route]:
    """Every HttpApi event of every function, as API Gateway would route it."""
    routes = []
    for name, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        for event in (resource["Properties"].get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties") or {}
            auth = (props.get("Auth") or {}).get("Authorizer")
            routes.append(
                Route(
                    function=name,
                    method=str(props.get("Method", "ANY")).upper(),
                    path=props.get("Path", "$default"),
                    authorized=auth != "NONE",
                )
            )
    return routes


def function_handler(
    template: dict[str, Any], logical_id: str, code_root: Path | str | None = None
) -> tuple[Path, str, str]:
    """(code directory, module file name, handler attribute) of a function: its CodeUri in the
    source tree, or, given `sam build`'s output folder as `code_root`, the function's built folder."""
    props = template["Resources"][logical_id]["Properties"]
    module, _, attribute = props["Handler"].rpartition(".")
    code_dir = Path(code_root) / logical_id if code_root is not None else ROOT / props["CodeUri"]
    return code_dir, module, attribute


def websocket_routes(template: dict[str, Any]) -> dict[str, str]:
    """The WebSocket API's routes (`$connect`, `$disconnect`, ...) -> the function each integrates."""
    import re

    integrations = {}
    for name, resource in resources_of_type(template, "AWS::ApiGatewayV2::Integration").items():
        uri = (resource.get("Properties") or {}).get("IntegrationUri")
        text = uri.get("Fn::Sub") if isinstance(uri, dict) else uri
        found = re.search(r"\$\{(\w+)\.Arn\}", str(text or ""))
        if found:
            integrations[name] = found.group(1)
    routes = {}
    for resource in resources_of_type(template, "AWS::ApiGatewayV2::Route").values():
        props = resource.get("Properties") or {}
        target = props.get("Target")
        text = target.get("Fn::Sub") if isinstance(target, dict) else target
        found = re.search(r"integrations/\$\{(\w+)\}", str(text or ""))
        if found and found.group(1) in integrations:
            routes[str(props.get("RouteKey"))] = integrations[found.group(1)]
    return routes
