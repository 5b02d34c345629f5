"""manifest_files: a set of files written into several directories in one module run (in-process, real files)."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.sophia.migrate.plugins.modules import manifest_files
from support.modules import run_module

FILES = [{"name": "a.yaml", "content": "kind: A\n"}, {"name": "b.yaml", "content": "kind: B\n"}]


@pytest.fixture
def dirs(tmp_path):
    one, two = tmp_path / "staging", tmp_path / "manifests"
    one.mkdir()
    two.mkdir()
    return one, two


def run(capsys, dest, files=None, check=False, diff=False, **options):
    args = {"files": FILES if files is None else files, "dest": [str(d) for d in dest], **options}
    if diff:
        args["_ansible_diff"] = True
    return run_module(manifest_files, args, capsys, check_mode=check)


def test_writes_every_file_into_every_directory_with_its_mode_then_nothing_changes(capsys, dirs):
    first = run(capsys, dirs, diff=True)
    assert first["changed"] and len(first["written"]) == 4 and first["unchanged"] == 0
    for d in dirs:
        assert (d / "a.yaml").read_text() == "kind: A\n" and (d / "b.yaml").read_text() == "kind: B\n"
        assert stat.S_IMODE(os.stat(d / "a.yaml").st_mode) == 0o600
    assert [x["after"] for x in first["diff"]] == ["kind: A\n", "kind: B\n"] * 2
    assert all(x["before"] == "" for x in first["diff"])
    again = run(capsys, dirs)
    assert not again["changed"] and again["unchanged"] == 4 and again["written"] == [] and "diff" not in again


def test_only_what_differs_is_written_and_the_diff_shows_before_and_after(capsys, dirs):
    run(capsys, dirs)
    (dirs[1] / "b.yaml").write_text("kind: Old\n")
    os.chmod(dirs[0] / "a.yaml", 0o644)
    res = run(capsys, dirs, diff=True)
    assert res["written"] == [str(dirs[1] / "b.yaml")] and res["fixed"] == [str(dirs[0] / "a.yaml")]
    assert res["diff"] == [{"before_header": str(dirs[1] / "b.yaml"), "after_header": str(dirs[1] / "b.yaml"),
                            "before": "kind: Old\n", "after": "kind: B\n"}]
    assert (dirs[1] / "b.yaml").read_text() == "kind: B\n"
    assert stat.S_IMODE(os.stat(dirs[0] / "a.yaml").st_mode) == 0o600


def test_check_mode_writes_nothing_even_where_the_directory_is_missing(capsys, dirs, tmp_path):
    missing = tmp_path / "not-yet"
    res = run(capsys, [*dirs, missing], check=True)
    assert res["changed"] and len(res["written"]) == 6
    assert os.listdir(dirs[0]) == [] and os.listdir(dirs[1]) == [] and not missing.exists()


def test_owner_and_group_by_name_or_id(capsys, dirs):
    res = run(capsys, dirs[:1], owner=str(os.getuid()), group="root" if os.getgid() == 0 else str(os.getgid()))
    assert not res.get("failed"), res
    info = os.stat(dirs[0] / "a.yaml")
    assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid())


@pytest.mark.parametrize(("files", "options", "message"), [
    ([{"name": "../x", "content": ""}], {}, "'../x' is not a plain file name"),
    ([{"name": "..", "content": ""}], {}, "'..' is not a plain file name"),
    ([{"name": "", "content": ""}], {}, "'' is not a plain file name"),
    ([*FILES, FILES[0]], {}, "file names given twice: a.yaml"),
    (FILES, {"mode": "rw-r--r--"}, "mode 'rw-r--r--' is not an octal mode"),
    (FILES, {"mode": "77777"}, "mode '77777' is out of range"),
    (FILES, {"owner": "no-such-user-here"}, "owner 'no-such-user-here' does not exist on this host"),
    (FILES, {"group": "no-such-group-here"}, "group 'no-such-group-here' does not exist on this host"),
    (FILES, {"owner": "ro\x00ot"}, "owner 'ro\\x00ot' does not exist on this host"),
    (FILES, {"owner": "4294967295"}, "owner '4294967295' is not a valid numeric id"),
])
def test_bad_input_is_refused_by_name_before_anything_is_written(capsys, dirs, files, options, message):
    res = run(capsys, dirs, files=files, **options)
    assert res["failed"] and message in res["msg"], res
    assert os.listdir(dirs[0]) == [] and os.listdir(dirs[1]) == []


def test_a_missing_directory_in_a_real_run_is_named(capsys, dirs, tmp_path):
    res = run(capsys, [dirs[0], tmp_path / "gone"])
    assert res["failed"] and f"directory {tmp_path / 'gone'} does not exist" in res["msg"]


def test_a_symbolic_link_at_a_target_is_refused_and_its_target_untouched(capsys, dirs, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    os.symlink(victim, dirs[0] / "a.yaml")
    res = run(capsys, dirs[:1])
    assert res["failed"] and "a.yaml is a symbolic link; refusing to write through it" in res["msg"]
    assert victim.read_text() == "keep me\n"


def test_a_problem_in_the_last_directory_stops_the_run_before_the_first_is_written(capsys, dirs):
    os.symlink("/nonexistent", dirs[1] / "b.yaml")
    res = run(capsys, dirs)
    assert res["failed"] and "b.yaml is a symbolic link" in res["msg"]
    assert os.listdir(dirs[0]) == []
