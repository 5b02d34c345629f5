"""endpoint_moves: the plan that moves a data store's network alias (the lab's stand-in for a Service switch)."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sophia.migrate.plugins.filter.endpoint_moves import endpoint_moves

EP = {
    "network": "sophia-lab",
    "alias": "sophia-redis",
    "source_container": "sophia_redis_1",
    "target_container": "sophia-k3s-redis",
}


def inspect(**aliases):
    return json.dumps(
        [
            {"Name": "/" + name.replace("__", "-"), "NetworkSettings": {"Networks": {"sophia-lab": {"Aliases": a}}}}
            for name, a in aliases.items()
        ]
    )


def test_moves_remove_from_the_source_first_then_add_to_the_target_keeping_other_aliases():
    out = endpoint_moves(
        inspect(sophia_redis_1=["sophia-redis", "redis", "abc123"], sophia__k3s__redis=None), EP, "target"
    )
    assert out == [
        {"container": "sophia_redis_1", "action": "remove", "aliases": ["redis", "abc123"]},
        {"container": "sophia-k3s-redis", "action": "add", "aliases": ["sophia-redis"]},
    ]


def test_nothing_to_do_when_already_in_place_and_back_the_other_way():
    done = inspect(sophia_redis_1=["redis"], sophia__k3s__redis=["sophia-redis"])
    assert endpoint_moves(done, EP, "target") == []
    back = endpoint_moves(done, EP, "source")
    assert [m["action"] for m in back] == ["remove", "add"] and back[1]["aliases"] == ["redis", "sophia-redis"]


def test_a_removed_old_container_is_fine_but_a_missing_new_one_is_an_error():
    only_target = json.dumps(json.loads(inspect(sophia__k3s__redis=[]))[:1])
    assert endpoint_moves(only_target, EP, "target")[0]["action"] == "add"
    with pytest.raises(AnsibleFilterError, match="sophia_redis_1 does not exist"):
        endpoint_moves(only_target, EP, "source")


@pytest.mark.parametrize(
    "text,endpoint,match",
    [
        ("not json", EP, "not JSON"),
        ("{}", EP, "list of containers"),
        (inspect(sophia_redis_1=[]), {**EP, "alias": ""}, "needs alias"),
        (
            json.dumps([{"Name": "/sophia_redis_1", "NetworkSettings": {"Networks": {"bridge": {}}}}]),
            EP,
            "not on network",
        ),
    ],
)
def test_bad_input_is_named(text, endpoint, match):
    with pytest.raises(AnsibleFilterError, match=match):
        endpoint_moves(text, endpoint, "target")


def test_a_forwarder_check_mode_has_not_made_yet_is_planned_as_a_container_without_aliases():
    only_source = json.dumps(json.loads(inspect(sophia_redis_1=["sophia-redis"]))[:1])
    with pytest.raises(AnsibleFilterError, match="does not exist"):
        endpoint_moves(only_source, EP, "target")
    assert endpoint_moves(only_source, EP, "target", ["sophia-k3s-redis"]) == [
        {"container": "sophia_redis_1", "action": "remove", "aliases": []},
        {"container": "sophia-k3s-redis", "action": "add", "aliases": ["sophia-redis"]},
    ]
    # a container that exists keeps what docker inspect says about it
    done = inspect(sophia_redis_1=[], sophia__k3s__redis=["sophia-redis"])
    assert endpoint_moves(done, EP, "target", ["sophia-k3s-redis"]) == []
