"""freeze_hold: the routes a write freeze holds in the splitter (backend, servers, ready URL), or its problems."""

from __future__ import annotations

import pytest

from ansible_collections.sophia.migrate.plugins.filter.freeze_hold import freeze_hold

# production's routes (inventories/production/group_vars/edge.yml), two of them
SHIFT = [
    {"name": "www-api-research", "host": "www.sophia-intel.ai", "path": "/api/research", "port": 9102,
     "health_path": "/api/research/health", "compose": ["127.0.0.1:8001"], "k3s": ["127.0.0.1:30080"]},
    {"name": "www-api-context", "host": "www.sophia-intel.ai", "path": "/api/context", "port": 9103,
     "health_path": "/api/context/health", "compose": ["127.0.0.1:8002"], "k3s": ["127.0.0.1:30080"]},
    {"name": "two-sides", "port": 9200, "compose": ["a:1", "b:2"], "k3s": ["c:3"]},
]
SOCK = "/run/haproxy/admin.sock"


def test_production_s_hold_names_backends_servers_and_ready_urls():
    out = freeze_hold({"runtime_api": SOCK, "routes": ["www-api-context", "www-api-research"]}, SHIFT, "172.17.0.1")
    assert out["problems"] == []
    assert out["routes"] == [
        {"name": "www-api-context", "backend": "route_www_api_context", "servers": ["compose1"],
         "ready_urls": ["http://172.17.0.1:9103/api/context/health"], "host": "www.sophia-intel.ai",
         "park": None, "addresses": {}},
        {"name": "www-api-research", "backend": "route_www_api_research", "servers": ["compose1"],
         "ready_urls": ["http://172.17.0.1:9102/api/research/health"], "host": "www.sophia-intel.ai",
         "park": None, "addresses": {}},
    ]


def test_defaults_every_compose_server_wildcard_bind_and_explicit_routes():
    routes = ["two-sides", {"name": "elsewhere", "ready_url": "http://10.0.0.9:9300/health"}]
    out = freeze_hold({"runtime_api": SOCK, "routes": routes}, SHIFT, "0.0.0.0")
    assert out["problems"] == []
    two, other = out["routes"]
    assert two["servers"] == ["compose1", "compose2"] and two["ready_urls"] == ["http://127.0.0.1:9200/health"]
    assert two["host"] is None
    assert other == {"name": "elsewhere", "backend": "route_elsewhere", "servers": ["compose1"],
                     "ready_urls": ["http://10.0.0.9:9300/health"], "host": None, "park": None, "addresses": {}}


@pytest.mark.parametrize(("hold", "message"), [
    ("yes", "data_migration_write_freeze.hold must be a mapping"),
    ({"routes": ["www-api-context"]}, "hold.runtime_api is required"),
    ({"runtime_api": SOCK}, "hold.routes must be a non-empty list"),
    ({"runtime_api": SOCK, "routes": []}, "hold.routes must be a non-empty list"),
    ({"runtime_api": SOCK, "routes": ["www-api-nope"]}, "routes[0]: www-api-nope is not one of traffic_shift_routes"),
    ({"runtime_api": SOCK, "routes": ["x; disable frontend y"]}, "routes[0] must be a route name"),
    ({"runtime_api": SOCK, "routes": [{"name": "www-api-context", "servers": []}]}, "routes[0].servers must be"),
    ({"runtime_api": SOCK, "routes": [{"name": "n", "ready_url": "ftp://x"}]}, "routes[0].ready_url must be an http"),
    ({"runtime_api": SOCK, "routes": [{"name": "www-api-context", "port": 1}]}, "routes[0].port is not a known key"),
    ({"runtime_api": SOCK, "routes": ["www-api-context", "www-api-context"]}, "names www-api-context twice"),
    ({"runtime_api": SOCK, "routes": ["www-api-context"], "ready_timeout": 0}, "ready_timeout must be"),
    ({"runtime_api": SOCK, "routes": ["www-api-context"], "ready_timeout": "soon"}, "ready_timeout must be"),
    ({"runtime_api": SOCK, "routes": ["www-api-context"], "host": ""}, "hold.host must be"),
    ({"runtime_api": SOCK, "routes": ["www-api-context"], "sockets": 1}, "hold.sockets is not a known key"),
    ({"runtime_api": SOCK, "routes": ["www-api-context"], "park": "localhost:1"}, "hold.park must be IPV4:PORT"),
    ({"runtime_api": SOCK, "routes": ["two-sides"], "park": "127.0.0.1:1"}, "two-sides cannot be parked"),
    ({"runtime_api": SOCK, "routes": [{"name": "n", "ready_url": "http://x/"}], "park": "127.0.0.1:1"},
     "n cannot be parked"),
])
def test_problems_name_the_key_and_no_route_is_held(hold, message):
    out = freeze_hold(hold, SHIFT)
    assert out["routes"] == []
    assert any(message in p for p in out["problems"]), out["problems"]


def test_a_route_unknown_on_this_host_says_which_are_known():
    out = freeze_hold({"runtime_api": SOCK, "routes": ["www-api-context"]}, [])
    assert out["problems"] == ["data_migration_write_freeze.hold.routes[0]: www-api-context is not one of "
                               "traffic_shift_routes on this host (known: none); give its ready_url"]


def test_parked_routes_go_back_to_their_upstreams_and_are_checked_there():
    out = freeze_hold({"runtime_api": SOCK, "routes": ["www-api-context"], "park": "127.0.0.1:1"}, SHIFT, "172.17.0.1")
    assert out["problems"] == []
    assert out["routes"] == [{"name": "www-api-context", "backend": "route_www_api_context", "servers": ["compose1"],
                              "ready_urls": ["http://127.0.0.1:8002/api/context/health"], "host": "www.sophia-intel.ai",
                              "park": "127.0.0.1:1", "addresses": {"compose1": "127.0.0.1:8002"}}]
