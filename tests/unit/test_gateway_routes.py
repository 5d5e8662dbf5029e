"""The local gateway routes as API Gateway HTTP APIs do, and builds payload 2.0 events."""

from __future__ import annotations

from sluice.local.gateway import Gateway
from sluice.local.template import Route, http_routes, load_template


def gateway(*routes: Route) -> Gateway:
    return Gateway(list(routes), invoke=lambda *_: None, authorizer=None)


def test_literal_routes_win_over_parameters_and_greedy_paths():
    routes = gateway(
        Route("Greedy", "ANY", "/api/{proxy+}", True),
        Route("Param", "GET", "/api/{name}", True),
        Route("Literal", "GET", "/api/health", True),
    )
    assert routes.match("GET", "/api/health")[0].route.function == "Literal"
    matched, params = routes.match("GET", "/api/other")
    assert matched.route.function == "Param" and params == {"name": "other"}
    matched, params = routes.match("POST", "/api/a/b/c")
    assert matched.route.function == "Greedy" and params == {"proxy": "a/b/c"}


def test_method_must_match_and_unknown_paths_do_not_route():
    routes = gateway(Route("Get", "GET", "/pipeline/{pipeline_id}", True))
    assert routes.match("DELETE", "/pipeline/1") is None
    assert routes.match("GET", "/pipeline/1/extra") is None
    assert routes.match("GET", "/pipeline/1")[1] == {"pipeline_id": "1"}


def test_every_template_route_is_served_and_only_root_and_health_are_public():
    routes = http_routes(load_template())
    public = {(r.method, r.path) for r in routes if not r.authorized}
    assert public == {("GET", "/"), ("GET", "/health")}
    served = gateway(*routes)
    for route in routes:
        concrete = route.path.replace("{", "").replace("}", "")
        assert served.match(route.method, concrete) is not None, route
