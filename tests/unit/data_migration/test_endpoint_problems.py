"""endpoint_problems: preflight's check of a data_migration endpoint (and its optional forward), key by key."""

from __future__ import annotations

import pytest

from ansible_collections.sophia.migrate.plugins.filter.endpoint_problems import endpoint_problems

EP = {
    "network": "sophia_default",
    "alias": "redis",
    "source_container": "sophia-redis-1",
    "target_container": "sophia-redis-forwarder",
}
FWD = {"host": "10.0.0.5", "port": 30379}


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"source": {}, "target": {}},
        {"endpoint": EP},
        {"endpoint": {**EP, "forward": FWD}},
        {"endpoint": {**EP, "forward": {**FWD, "port": "30379", "listen_port": 6379, "image": "alpine/socat:1.8.0.3"}}},
    ],
)
def test_good_options_have_no_problems(options):
    assert endpoint_problems(options, "data_migration_redis") == []


@pytest.mark.parametrize(
    "endpoint,problem",
    [
        ("redis", "data_migration_redis.endpoint must be a mapping"),
        ({**EP, "aliases": ["x"]}, "data_migration_redis.endpoint.aliases is not a known key"),
        ({**EP, "alias": ""}, "data_migration_redis.endpoint.alias is required (a non-empty string)"),
        ({k: v for k, v in EP.items() if k != "network"}, "data_migration_redis.endpoint.network is required"),
        ({**EP, "forward": "10.0.0.5:30379"}, "data_migration_redis.endpoint.forward must be a mapping"),
        ({**EP, "forward": {"port": 30379}}, "data_migration_redis.endpoint.forward.host is required"),
        ({**EP, "forward": {"host": "10.0.0.5"}}, "data_migration_redis.endpoint.forward.port is required"),
        ({**EP, "forward": {**FWD, "port": 0}}, "endpoint.forward.port must be a port number 1-65535, not 0"),
        ({**EP, "forward": {**FWD, "port": 65536}}, "forward.port must be a port number 1-65535, not 65536"),
        ({**EP, "forward": {**FWD, "port": True}}, "forward.port must be a port number 1-65535, not True"),
        ({**EP, "forward": {**FWD, "port": "30379/tcp"}}, "port number 1-65535, not '30379/tcp'"),
        ({**EP, "forward": {**FWD, "listen_port": -1}}, "forward.listen_port must be a port number 1-65535, not -1"),
        ({**EP, "forward": {**FWD, "image": ""}}, "forward.image must be a non-empty image reference"),
        ({**EP, "forward": {**FWD, "nodeport": 1}}, "endpoint.forward.nodeport is not a known key"),
        (
            {**EP, "target_container": "sophia-redis-1", "forward": FWD},
            "target_container names the forwarder the role creates; it must differ from source_container",
        ),
    ],
)
def test_each_problem_names_the_key(endpoint, problem):
    problems = endpoint_problems({"endpoint": endpoint}, "data_migration_redis")
    assert any(problem in p for p in problems), problems


def test_every_problem_is_reported_at_once_with_the_variable_name():
    problems = endpoint_problems({"endpoint": {**EP, "forward": {"image": "x"}}}, "data_migration_qdrant")
    assert problems == [
        "data_migration_qdrant.endpoint.forward.host is required (the address of the K3s node the NodePort listens on)",
        "data_migration_qdrant.endpoint.forward.port is required (the K3s NodePort, 1-65535)",
    ]


def test_without_forward_the_same_container_on_both_sides_is_left_to_endpoint_moves():
    assert endpoint_problems({"endpoint": {**EP, "target_container": "sophia-redis-1"}}, "x") == []
