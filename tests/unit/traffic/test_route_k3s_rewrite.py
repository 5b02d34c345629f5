"""route_k3s_rewrite: the edge's answer wins; a route's own k3s_rewrite is used where the edge is not read and must
agree with it where it is; bad input is a named problem, never an exception."""

from __future__ import annotations

import pytest

from ansible_collections.sophia.migrate.plugins.filter.route_k3s_rewrite import route_k3s_rewrite

STRIP = {"from": "/", "to": "/api/context/"}
EDGE = [{"name": "ctx", "file": "/e/www.conf", "line": 9, "location": "/api/context/", "k3s_rewrite": STRIP,
         "k3s_problem": ""},
        {"name": "res", "file": "/e/www.conf", "line": 12, "location": "/api/research", "k3s_rewrite": None,
         "k3s_problem": ""},
        {"name": "old", "file": "/e/www.conf", "line": 15, "location": "/old/", "k3s_rewrite": None,
         "k3s_problem": "/e/www.conf:16: the location rewrites the path (...)"}]


def test_the_edge_answer_is_used():
    assert route_k3s_rewrite({"name": "ctx"}, EDGE) == {"rewrite": STRIP, "problem": ""}
    assert route_k3s_rewrite({"name": "res"}, EDGE) == {"rewrite": None, "problem": ""}


def test_a_declared_rewrite_is_used_without_an_edge_and_must_agree_with_one():
    assert route_k3s_rewrite({"name": "ctx", "k3s_rewrite": STRIP}, []) == {"rewrite": STRIP, "problem": ""}
    assert route_k3s_rewrite({"name": "ctx", "k3s_rewrite": STRIP}, EDGE)["problem"] == ""
    out = route_k3s_rewrite({"name": "res", "k3s_rewrite": STRIP}, EDGE)
    assert out["rewrite"] is None and "route res (/e/www.conf:12, location /api/research)" in out["problem"]
    assert "disagrees with the edge, which needs None" in out["problem"]
    # declaring "nothing is stripped" where the edge strips is a disagreement too
    assert "disagrees" in route_k3s_rewrite({"name": "ctx", "k3s_rewrite": None}, EDGE)["problem"]


def test_an_edge_problem_names_the_route_and_the_place():
    out = route_k3s_rewrite({"name": "old"}, EDGE)
    assert out == {"rewrite": None,
                   "problem": "route old (/e/www.conf:15, location /old/): /e/www.conf:16: the location rewrites "
                              "the path (...)"}


@pytest.mark.parametrize("bad", [{"from": "/"}, {"from": "/", "to": "x"}, {"from": "/", "to": "/a b"}, "/",
                                 {"from": "/", "to": "/a", "extra": 1}, {"from": 1, "to": "/a"}])
def test_a_malformed_k3s_rewrite_is_a_named_problem(bad):
    out = route_k3s_rewrite({"name": "ctx", "k3s_rewrite": bad}, [])
    assert out["rewrite"] is None and out["problem"].startswith("route ctx: k3s_rewrite must be {from: PATH, to: PATH}")


def test_a_route_that_is_not_a_mapping():
    assert "must be a mapping" in route_k3s_rewrite(["ctx"], EDGE)["problem"]
