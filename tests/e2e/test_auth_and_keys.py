"""Auth over HTTP through the local gateway: API keys, JWTs, roles, tenancy, key management."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import jwt_for, table_dump


def test_root_and_health_answer_without_auth(stack):
    with stack.client() as client:
        assert client.get("/").json() == {"status": "ok"}
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"


def test_unknown_route_is_404(stack):
    with stack.admin as client:
        response = client.get("/no/such/route")
    assert response.status_code == 404
    assert "No route" in response.json()["detail"]


@pytest.mark.parametrize(
    "authorization, reason",
    [
        (None, "Missing Authorization header"),
        ("Basic abc", "must be 'Bearer"),
        ("Bearer df_key_short", "malformed"),
        ("Bearer df_key_" + "z" * 40, "unknown or has been revoked"),
        ("Bearer not-a-token", "neither an API key nor a JWT"),
    ],
)
def test_bad_credentials_get_401_with_a_sentence(stack, authorization, reason):
    headers = {"Authorization": authorization} if authorization else {}
    with stack.client() as client:
        response = client.get("/api/v1/api-keys", headers=headers)
    assert response.status_code == 401
    assert reason in response.json()["detail"]


def test_jwt_failures_are_401(stack):
    expired = jwt_for("p1", "admin", ttl=-10)
    wrong_secret = jwt_for("p1", "admin", secret="another-secret-entirely-000000")
    bad_role = jwt_for("p1", "superuser")
    bad_project = jwt_for("p#1", "admin")
    for token, reason in [
        (expired, "expired"),
        (wrong_secret, "signature is invalid"),
        (bad_role, "role must be"),
        (bad_project, "project must be"),
    ]:
        with stack.client(token) as client:
            response = client.get("/api/v1/api-keys")
        assert response.status_code == 401, token
        assert reason in response.json()["detail"]


def test_unsigned_jwt_is_refused(stack):
    import base64

    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    token = f"{part({'alg': 'none'})}.{part({'sub': 'x', 'role': 'admin', 'project': 'p', 'exp': 9e9})}."
    with stack.client(token) as client:
        response = client.get("/api/v1/api-keys")
    assert response.status_code == 401
    assert "HS256" in response.json()["detail"]


def test_key_lifecycle_create_use_list_revoke(stack, project_admin):
    project, admin_key = project_admin
    with stack.client(admin_key) as admin:
        created = admin.post("/api/v1/api-keys", json={"name": "reader", "role": "viewer"})
        assert created.status_code == 201
        body = created.json()
        assert set(body) >= {"id", "name", "role", "key"} and body["role"] == "viewer"
        assert body["key"].startswith("df_key_") and len(body["key"]) >= 39

        listed = admin.get("/api/v1/api-keys").json()["data"]
        assert {k["id"] for k in listed} >= {body["id"]}
        assert all("key" not in k and "key_hash" not in k for k in listed)

        with stack.client(body["key"]) as reader:
            assert reader.get("/api/v1/api-keys").status_code == 403  # viewer may not manage keys

        assert admin.delete(f"/api/v1/api-keys/{body['id']}").status_code == 204
        with stack.client(body["key"]) as reader:
            revoked = reader.get("/api/v1/api-keys")
        assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
        assert admin.delete(f"/api/v1/api-keys/{body['id']}").status_code == 404


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_only_admins_manage_keys(stack, role):
    with stack.client(jwt_for("roles-project", role)) as client:
        response = client.post("/api/v1/api-keys", json={"name": "x", "role": "viewer"})
    assert response.status_code == 403
    assert "admin role" in response.json()["detail"]


@pytest.mark.parametrize(
    "body, content",
    [
        ({"name": "x", "role": "root"}, None),
        ({"name": "", "role": "viewer"}, None),
        ({"name": "x" * 151, "role": "viewer"}, None),
        ({"role": "viewer"}, None),
        (None, '{"name": "x", '),
        (None, "[1, 2]"),
    ],
)
def test_bad_key_requests_are_422_and_write_nothing(stack, project_admin, body, content):
    _, admin_key = project_admin
    with stack.client(admin_key) as admin:
        before = admin.get("/api/v1/api-keys").json()["data"]
        if content is None:
            response = admin.post("/api/v1/api-keys", json=body)
        else:
            response = admin.post(
                "/api/v1/api-keys", content=content, headers={"Content-Type": "application/json"}
            )
        assert response.status_code == 422
        assert response.json()["detail"]
        assert admin.get("/api/v1/api-keys").json()["data"] == before


def test_projects_never_see_each_others_keys(stack, project_admin):
    _, key_a = project_admin
    with stack.client(jwt_for("other-project", "admin")) as other:
        foreign = other.post("/api/v1/api-keys", json={"name": "b", "role": "viewer"}).json()
    with stack.client(key_a) as admin_a:
        ids = {k["id"] for k in admin_a.get("/api/v1/api-keys").json()["data"]}
        assert foreign["id"] not in ids
        assert admin_a.delete(f"/api/v1/api-keys/{foreign['id']}").status_code == 404
    with stack.client(foreign["key"]) as still_valid:
        assert still_valid.get("/api/v1/api-keys").status_code == 403  # exists, and only a viewer


def test_key_secrets_are_stored_only_as_hashes(stack, project_admin):
    _, admin_key = project_admin
    with stack.client(admin_key) as admin:
        secret = admin.post("/api/v1/api-keys", json={"name": "audit", "role": "editor"}).json()["key"]
    dump = table_dump(stack)
    assert secret not in dump and stack.admin_key not in dump
    assert secret not in "".join(stack.output)


def test_authentication_is_checked_before_the_body(stack):
    with stack.client() as anonymous:
        response = anonymous.post(
            "/api/v1/api-keys", content="{not json", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 401


def test_the_gateway_serves_concurrent_clients(stack, project_admin):
    # Handlers run on many gateway threads at once; each must get a working event loop.
    from concurrent.futures import ThreadPoolExecutor

    _, admin_key = project_admin

    def work(i: int) -> list[int]:
        with stack.client(admin_key) as client:
            created = client.post("/pipeline", json={"name": f"concurrent-{i}", "pipeline_type_name": "t"})
            fetched = client.get(f"/pipeline/{created.json()['id']}")
            return [created.status_code, fetched.status_code, client.get("/api/v1/api-keys").status_code]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = [status for result in pool.map(work, range(16)) for status in result]
    assert statuses.count(201) == 16 and statuses.count(200) == 32
