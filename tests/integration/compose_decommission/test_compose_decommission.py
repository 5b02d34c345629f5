"""compose_decommission against the real Docker engine and a real Compose project (Debian's docker-compose v1).

The project has three services with named volumes; the role is run through ansible-playbook exactly as
a user would. Evidence is written into a real ledger file the way traffic_shift and data_migration do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import tarfile
import textwrap
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import docker
import pytest
import yaml
from standins.dns_zone import DnsZoneServer

from ansible_collections.sophia.migrate.plugins.modules import compose_project_info
from support.modules import run_module
from support.remote_host import inventory, remote_host, run_in
from support.servers import free_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
IMAGE = "local/debian-systemd:bookworm"
HEALTH = ["CMD", "python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/')"]


def compose_file(project_dir: str, api_port: int) -> str:
    svc = {"image": IMAGE, "command": ["python3", "-m", "http.server", "8000", "--directory", "/data"],
           "stop_signal": "SIGKILL",
           "healthcheck": {"test": HEALTH, "interval": "1s", "timeout": "2s", "retries": 30}}
    doc = {
        "version": "2.4",
        "services": {
            "api": {**svc, "volumes": ["apidata:/data"], "ports": [f"127.0.0.1:{api_port}:8000"]},
            "worker": {**svc, "volumes": ["workdata:/data"], "environment": {"SOPHIA_API_TOKEN": "topsecret-value"}},
            "edge": {**svc, "volumes": ["edgedata:/data"]},
            # declared behind a profile never enabled: no container (production's Grafana on a host without it)
            "dormant": {**svc, "profiles": ["never"]},
        },
        "volumes": {"apidata": {}, "workdata": {}, "edgedata": {}},
    }
    path = os.path.join(project_dir, "docker-compose.yml")
    with open(path, "w") as handle:
        yaml.safe_dump(doc, handle)
    return path


@pytest.fixture
def project(tmp_path):
    name = f"sophiatest{uuid.uuid4().hex[:8]}"
    api_port = free_port()
    path = compose_file(str(tmp_path), api_port)
    subprocess.run(["docker-compose", "-p", name, "-f", path, "up", "-d"], check=True, capture_output=True)
    cli = docker.from_env()
    for svc in ("api", "worker", "edge"):  # put data into each volume
        c = cli.containers.get(f"{name}_{svc}_1")
        fill = (f"echo {svc}-payload > /data/{svc}.txt && mkdir -p /data/sub"
                " && head -c 100000 /dev/urandom > /data/sub/blob")
        c.exec_run(["sh", "-c", fill])
    _wait_healthy(cli, name)
    yield {"name": name, "file": path, "cli": cli, "api_port": api_port}
    subprocess.run(["docker-compose", "-p", name, "-f", path, "down", "-v"], capture_output=True, check=False)


def _wait_healthy(cli, name, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cs = cli.containers.list(all=True, filters={"label": f"com.docker.compose.project={name}"})
        if cs and all((c.attrs["State"].get("Health") or {}).get("Status") == "healthy" for c in cs):
            return
        time.sleep(0.5)
    raise AssertionError(f"{name}: containers not healthy after {timeout}s")


def states(cli, name):
    return {c.labels["com.docker.compose.service"]: c.status
            for c in cli.containers.list(all=True, filters={"label": f"com.docker.compose.project={name}"})}


def run_role(tmp_path, project, extra: dict, check: bool = False, inventory: str | None = None
             ) -> subprocess.CompletedProcess:
    """Run the role on localhost, or with ``inventory`` on its host compose_host (the controller stays localhost)."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(textwrap.dedent("""\
        - hosts: localhost
          connection: local
          gather_facts: false
          roles:
            - role: sophia.migrate.compose_decommission
        """) if inventory is None else textwrap.dedent("""\
        - hosts: compose_host
          gather_facts: false
          roles:
            - role: sophia.migrate.compose_decommission
        """))
    variables = {
        "compose_decommission_project": project["name"],
        "compose_decommission_services": [
            {"name": "edge", "edge": True, "traffic_key": "traffic/www"},
            {"name": "api", "traffic_key": "traffic/api", "data_steps": ["data/api/cutover"]},
            {"name": "worker", "retire_without_replacement": "the test project's worker has no replacement"},
        ],
        "compose_decommission_backup_dir": str(tmp_path / "backups"),
        "compose_decommission_ledger_path": str(tmp_path / "ledger.json"),
        "compose_decommission_observe_seconds": 2,
        "compose_decommission_soak_seconds": 0,
        "compose_decommission_stop_timeout": 5,
        **extra,
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    python = os.path.join(ROOT, ".venv", "bin", "python")
    argv = [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", "localhost,", str(playbook),
            "-e", f"@{tmp_path / 'vars.json'}", "-e", f"ansible_python_interpreter={python}"]
    if inventory is not None:  # the inventory sets each host's interpreter
        argv = [argv[0], "-i", inventory, str(playbook), "-e", f"@{tmp_path / 'vars.json'}"]
    if check:
        argv.append("--check")
    env = {**os.environ, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(argv, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def write_evidence(path, traffic: dict[str, int], done_steps: list[str]):
    ledger = {"format": 1, "environment": "test", "state": traffic,
              "entries": [{"step": s, "status": "done", "phase": "phase2b", "data": {}, "undo": {}, "seq": i + 1}
                          for i, s in enumerate(done_steps)]}
    with open(path, "w") as handle:
        json.dump(ledger, handle)


def recap_changed(out: str) -> int:
    for line in out.splitlines():
        if line.startswith("localhost") and "changed=" in line:
            return int(line.split("changed=")[1].split()[0])
    raise AssertionError("no PLAY RECAP in output:\n" + out[-2000:])


def test_compose_project_info_reports_what_runs_without_secrets(project, capsys):
    res = run_module(compose_project_info, {"project": project["name"], "services": ["api", "worker"]}, capsys)
    proj = res["project"]
    assert sorted(proj["services"]) == ["api", "edge", "worker"]
    api = proj["services"]["api"]["containers"][0]
    assert api["running"] and api["health"] == "healthy" and api["ports"][0]["host_ip"] == "127.0.0.1"
    assert proj["volumes"][f"{project['name']}_apidata"]["size_bytes"] >= 100000
    assert proj["volumes"][f"{project['name']}_apidata"]["used_by"] == [f"{project['name']}_api_1"]
    worker = proj["services"]["worker"]["containers"][0]
    assert "SOPHIA_API_TOKEN" in worker["env_names"]
    assert "topsecret-value" not in json.dumps(res)
    assert proj["config_files"] == [project["file"]]
    assert proj["not_created"] == ["dormant"] and proj["unreadable_config_files"] == []
    # a declared service that was never created is known (nothing runs for it); a name in no file is refused
    dormant = run_module(compose_project_info, {"project": project["name"], "services": ["api", "dormant"]}, capsys)
    assert not dormant.get("failed") and "dormant" not in dormant["project"]["services"], dormant
    bad = run_module(compose_project_info, {"project": project["name"], "services": ["ghost"]}, capsys)
    assert bad["failed"] and "has no service(s) ghost" in bad["msg"] and "never created: dormant" in bad["msg"]


def test_gate_refuses_without_evidence_and_stops_nothing(tmp_path, project):
    write_evidence(tmp_path / "ledger.json", {"traffic/www": 100, "traffic/api": 50}, [])
    services = [{"name": "edge", "edge": True, "traffic_key": "traffic/www"},
                {"name": "api", "traffic_key": "traffic/api", "data_steps": ["data/api/cutover"]},
                {"name": "worker", "retire_without_replacement": "the test project's worker has no replacement"},
                {"name": "dormant", "traffic_key": "traffic/dormant"}]
    res = run_role(tmp_path, project, {"compose_decommission_services": services})
    assert res.returncode != 0
    # the never-created service is named as such and asks for no evidence; the others still do
    assert "dormant declared in" in res.stdout and "never created: nothing to retire" in res.stdout, res.stdout[-3000:]
    assert "traffic/dormant" not in res.stdout
    assert "evidence is missing, nothing was stopped" in res.stdout
    assert "traffic 'traffic/api' is at 50% on the new side, not 100%" in res.stdout
    assert "data step 'data/api/cutover' is not in the ledger" in res.stdout
    assert set(states(project["cli"], project["name"]).values()) == {"running"}


def test_unknown_project_and_service_are_clear_errors(tmp_path, project):
    write_evidence(tmp_path / "ledger.json", {}, [])
    res = run_role(tmp_path, project, {"compose_decommission_project": "nosuchproject"})
    assert res.returncode != 0 and "no Compose project named 'nosuchproject'" in res.stdout
    res = run_role(tmp_path, project, {"compose_decommission_services": [{"name": "ghost"}]})
    assert res.returncode != 0 and "has no service(s) ghost" in res.stdout


def test_decommission_backup_rollback_then_remove(tmp_path, project):
    cli, name = project["cli"], project["name"]
    write_evidence(tmp_path / "ledger.json", {"traffic/www": 100, "traffic/api": 100}, ["data/api/cutover"])

    # check mode stops nothing and writes no backup
    res = run_role(tmp_path, project, {}, check=True)
    assert res.returncode == 0, res.stdout[-3000:]
    assert set(states(cli, name).values()) == {"running"}
    assert not (tmp_path / "backups").exists() or not os.listdir(tmp_path / "backups")

    res = run_role(tmp_path, project, {})
    assert res.returncode == 0, res.stdout[-3000:]
    assert set(states(cli, name).values()) == {"exited"}
    ledger = json.loads((tmp_path / "ledger.json").read_text())
    stopped = [e["step"].split("/")[2] for e in ledger["entries"] if e["step"].endswith("/stopped")]
    assert stopped == ["api", "worker", "edge"]  # list order, edge last
    backups = {e["step"]: e["data"] for e in ledger["entries"] if e["step"].startswith("backup/volume/")}
    assert set(backups) == {f"backup/volume/{name}_{v}" for v in ("apidata", "workdata", "edgedata")}
    for data in backups.values():
        with open(data["path"], "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == data["sha256"]
        with tarfile.open(data["path"]) as tar:
            assert any(m.name.endswith("sub/blob") for m in tar.getmembers())

    # second run changes nothing
    res = run_role(tmp_path, project, {})
    assert res.returncode == 0 and recap_changed(res.stdout) == 0, res.stdout[-3000:]

    # rollback before removal: everything running and healthy again
    res = run_role(tmp_path, project, {"compose_decommission_action": "rollback"})
    assert res.returncode == 0, res.stdout[-3000:]
    assert set(states(cli, name).values()) == {"running"}
    _wait_healthy(cli, name)

    # a data_migration forwarder on the project's network (Compose clients' way to the K3s Redis), and one of
    # another stack that must stay
    fwd_label = {"sophia.migrate.forwarder": "redis"}
    ours = cli.containers.run(IMAGE, ["sleep", "infinity"], name=f"{name}-fwd", labels=fwd_label,
                              network=f"{name}_default", detach=True, stop_signal="SIGKILL")
    other = cli.containers.run(IMAGE, ["sleep", "infinity"], name=f"{name}-other-fwd", labels=fwd_label,
                               detach=True, stop_signal="SIGKILL")
    try:
        # decommission again, then the final step removes containers, and with the second switch the volumes
        res = run_role(tmp_path, project, {"compose_decommission_remove": True,
                                           "compose_decommission_remove_data": True})
        assert res.returncode == 0, res.stdout[-3000:]
        assert states(cli, name) == {}
        with pytest.raises(docker.errors.NotFound):
            cli.containers.get(ours.id)
        assert cli.containers.get(other.id).status == "running"
    finally:
        for container in (ours, other):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
    volumes = [v.name for v in cli.volumes.list(filters={"label": f"com.docker.compose.project={name}"})]
    assert volumes == []
    for data in backups.values():  # backups kept, unchanged
        with open(data["path"], "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == data["sha256"]

    # rollback after removal is refused with the way forward
    res = run_role(tmp_path, project, {"compose_decommission_action": "rollback"})
    assert res.returncode != 0
    assert "no Compose project named" in res.stdout or "no longer exist" in res.stdout


def test_busy_service_is_not_stopped(tmp_path, project):
    """Traffic that still arrives (a client polling the api container) stops the role before the stop."""
    cli, name = project["cli"], project["name"]
    write_evidence(tmp_path / "ledger.json", {"traffic/www": 100, "traffic/api": 100}, ["data/api/cutover"])
    url = f"http://127.0.0.1:{project['api_port']}/"  # published on loopback only
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url, timeout=1).read()
            time.sleep(0.05)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    try:
        res = run_role(tmp_path, project, {"compose_decommission_observe_seconds": 3})
    finally:
        stop.set()
        t.join(5)
    assert res.returncode != 0, res.stdout[-4000:]
    assert "traffic still arrives" in res.stdout
    assert states(cli, name)["api"] == "running"


# A writer that flushes its last data when it is stopped (SIGTERM) and logs every start: a backup taken before
# the stop misses the flush, and a backup reused after a rollback misses the new start.
WRITER = ("echo start >> /data/starts.log; trap 'echo flushed-at-stop > /data/final.txt; exit 0' TERM; "
          "while :; do sleep 0.2 & wait $$!; done")


@pytest.fixture
def writer_project(tmp_path):
    name = f"sophiatest{uuid.uuid4().hex[:8]}"
    doc = {"version": "2.4",
           "services": {"db": {"image": IMAGE, "command": ["sh", "-c", WRITER], "stop_signal": "SIGTERM",
                               "volumes": ["dbdata:/data"]}},
           "volumes": {"dbdata": {}}}
    path = str(tmp_path / "docker-compose.yml")
    with open(path, "w") as handle:
        yaml.safe_dump(doc, handle)
    subprocess.run(["docker-compose", "-p", name, "-f", path, "up", "-d"], check=True, capture_output=True)
    cli = docker.from_env()
    mountpoint = cli.volumes.get(f"{name}_dbdata").attrs["Mountpoint"]
    _wait_for(lambda: os.path.exists(os.path.join(mountpoint, "starts.log")))
    yield {"name": name, "file": path, "cli": cli, "mountpoint": mountpoint, "volume": f"{name}_dbdata"}
    subprocess.run(["docker-compose", "-p", name, "-f", path, "down", "-v"], capture_output=True, check=False)


def _wait_for(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


DB_SERVICE = [{"name": "db", "retire_without_replacement": "the test writer has no replacement"}]


def archive_files(path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {os.path.normpath(m.name): tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def task_positions(out: str, *names: str) -> list[int]:
    return [out.index(f"TASK [sophia.migrate.compose_decommission : {n}") for n in names]


def test_backup_after_the_stop_and_no_deletion_on_an_old_backup(tmp_path, writer_project):
    cli, name, volume = writer_project["cli"], writer_project["name"], writer_project["volume"]
    write_evidence(tmp_path / "ledger.json", {}, [])
    extra = {"compose_decommission_services": DB_SERVICE, "compose_decommission_observe_seconds": 0}
    step = f"backup/volume/{volume}"

    # 1) decommission: stop, then back up; the archive holds what the writer flushed when it was stopped
    res = run_role(tmp_path, writer_project, extra)
    assert res.returncode == 0, res.stdout[-3000:]
    assert states(cli, name) == {"db": "exited"}
    stop, backup = task_positions(res.stdout, "Service | stop", "Service | back up")
    assert stop < backup
    first = next(e["data"] for e in json.loads((tmp_path / "ledger.json").read_text())["entries"] if e["step"] == step)
    old_files = archive_files(first["path"])
    assert old_files["final.txt"] == b"flushed-at-stop\n" and old_files["starts.log"] == b"start\n"

    # 2) rollback: the writer runs again and writes newer data
    res = run_role(tmp_path, writer_project, {**extra, "compose_decommission_action": "rollback"})
    assert res.returncode == 0, res.stdout[-3000:]
    starts = os.path.join(writer_project["mountpoint"], "starts.log")
    _wait_for(lambda: Path(starts).read_text() == "start\nstart\n")

    # 3) decommission again with removal of the data: a fresh backup of the newer data, verified, then deletion
    res = run_role(tmp_path, writer_project, {**extra, "compose_decommission_remove": True,
                                              "compose_decommission_remove_data": True})
    assert res.returncode == 0, res.stdout[-3000:]
    positions = task_positions(res.stdout, "Service | stop", "Service | back up",
                               "Remove | named volumes of the retired services with a recorded backup",
                               "Remove | the named volumes whose backup was just verified")
    assert positions == sorted(positions)
    assert volume not in [v.name for v in cli.volumes.list()]
    entries = [e for e in json.loads((tmp_path / "ledger.json").read_text())["entries"] if e["step"] == step]
    latest = entries[-1]["data"]
    assert latest["path"] != first["path"] and latest["sha256"] != first["sha256"]
    new_files = archive_files(latest["path"])
    assert new_files["starts.log"] == b"start\nstart\n" and new_files["final.txt"] == b"flushed-at-stop\n"
    with open(first["path"], "rb") as handle:  # the old backup is kept, unchanged
        assert hashlib.sha256(handle.read()).hexdigest() == first["sha256"]
    with open(latest["path"], "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == latest["sha256"]


def test_tampered_backup_stops_the_deletion(tmp_path, writer_project):
    cli, volume = writer_project["cli"], writer_project["volume"]
    write_evidence(tmp_path / "ledger.json", {}, [])
    extra = {"compose_decommission_services": DB_SERVICE, "compose_decommission_observe_seconds": 0}
    res = run_role(tmp_path, writer_project, extra)
    assert res.returncode == 0, res.stdout[-3000:]
    data = next(e["data"] for e in json.loads((tmp_path / "ledger.json").read_text())["entries"]
                if e["step"] == f"backup/volume/{volume}")
    with open(data["path"], "ab") as handle:
        handle.write(b"tampered")
    res = run_role(tmp_path, writer_project, {**extra, "compose_decommission_remove": True,
                                              "compose_decommission_remove_data": True})
    assert res.returncode != 0
    assert f"differs from the recorded {data['sha256']}" in res.stdout
    assert volume in [v.name for v in cli.volumes.list()]
    assert os.path.exists(os.path.join(writer_project["mountpoint"], "final.txt"))


@pytest.fixture
def remote_compose_host():
    """The Compose host as a different inventory host than the controller, with a filesystem of its own.

    A container that drives the controller's Docker engine (its socket) and reads the volumes' data where
    Docker keeps it (read-only): the role runs there as on lambda-gpu-01, while the ledger is on the controller.
    """
    root = docker.from_env().info()["DockerRootDir"]
    mounts = {"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
              os.path.join(root, "volumes"): {"bind": os.path.join(root, "volumes"), "mode": "ro"}}
    with remote_host("ledgertest", mounts) as host:
        yield host


def test_backups_are_recorded_in_the_controller_ledger_when_the_compose_host_is_remote(
        tmp_path, writer_project, remote_compose_host):
    """Production's shape: the role runs on a Compose host that is not the controller.

    The backup must be recorded in the controller's ledger (where the removal step and every later phase read it),
    no ledger file may appear on the Compose host, and the volume is deleted only after its backup, on the Compose
    host, was verified against the controller's record.
    """
    host, cli, volume = remote_compose_host, writer_project["cli"], writer_project["volume"]
    ledger = tmp_path / "ledger.json"
    write_evidence(ledger, {}, [])
    backup_dir = f"/var/backups/{host['name']}"  # only on the Compose host
    inv = inventory(str(tmp_path / "inventory.json"), host)
    extra = {"compose_decommission_services": DB_SERVICE, "compose_decommission_observe_seconds": 0,
             "compose_decommission_backup_dir": backup_dir}

    res = run_role(tmp_path, writer_project, {**extra, "compose_decommission_remove": True,
                                              "compose_decommission_remove_data": True}, inventory=inv)
    assert res.returncode == 0, res.stdout[-4000:]
    assert "compose_host" in res.stdout and "ok: [compose_host -> localhost]" in res.stdout

    # the record is in the controller's ledger, and it describes the archive on the Compose host
    entries = [e for e in json.loads(ledger.read_text())["entries"] if e["step"] == f"backup/volume/{volume}"]
    assert [e["status"] for e in entries] == ["done"] and entries[0]["phase"] == "phase2d"
    record = entries[0]["data"]
    assert record["path"] == f"{backup_dir}/{volume}.tar.gz" and record["source"] == volume
    assert not os.path.exists(backup_dir)  # a different filesystem: the archive is not on the controller
    code, out = run_in(host, ["sha256sum", record["path"]])
    assert code == 0 and out.split()[0] == record["sha256"]
    # nothing wrote a ledger (or its lock) on the Compose host
    for path in (str(ledger), f"{ledger}.lock"):
        code, _out = run_in(host, ["test", "-e", path])
        assert code == 1, f"{path} exists on the Compose host"
    code, out = run_in(host, ["find", "/", "-xdev", "-name", "ledger.json*"])
    assert out.strip() == "", out

    # the removal read that record: the backup was verified on the Compose host, then the volume deleted
    verify, delete = task_positions(res.stdout, "Remove | named volumes of the retired services with a recorded backup",
                                    "Remove | the named volumes whose backup was just verified")
    assert verify < delete and f"changed: [compose_host] => (item={volume})" in res.stdout[delete:]
    assert volume not in [v.name for v in cli.volumes.list()]
    assert states(cli, writer_project["name"]) == {}


def test_dns_pointing_elsewhere_stops_before_anything_is_stopped(tmp_path, project):
    """The DNS check ran after the containers were removed (found on staging, where the controller's resolver did not
    know the domain): a mismatch could stop nothing any more. Now it is part of the preflight. DNS stand-in:
    tests/standins/dns_zone.py (a real UDP DNS server answering from a zone)."""
    write_evidence(tmp_path / "ledger.json", {"traffic/www": 100, "traffic/api": 100}, ["data/api/cutover"])
    with DnsZoneServer({"www.sophia-intel.ai": {"A": ["127.0.0.77"]}}) as zone:
        res = run_role(tmp_path, project, {
            "compose_decommission_dns_hostnames": ["www.sophia-intel.ai"],
            "compose_decommission_dns_expected": ["127.0.0.10"],
            "compose_decommission_dns_nameservers": ["127.0.0.1"],
            "compose_decommission_dns_port": zone.port,
        })
    assert res.returncode != 0
    refused = "DNS does not point at the new ingress (127.0.0.10), nothing was stopped: www.sophia-intel.ai"
    assert refused in res.stdout, res.stdout[-3000:]
    assert "Module failed" not in res.stdout
    assert set(states(project["cli"], project["name"]).values()) == {"running"}
