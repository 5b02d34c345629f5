"""Discover Docker Compose projects through the Docker API (compose labels), for Compose v1 and v2.

Compose v1 (docker-compose 1.x) and v2 (the docker compose plugin) both label what they create:
``com.docker.compose.project``, ``.service``, ``.config-hash``, ``.project.working_dir``,
``.project.config_files``, ``.container-number``, ``.oneoff``, and on volumes/networks
``com.docker.compose.volume`` / ``.network``. Reading labels through the API means we never parse
a Compose file to find out what runs: what runs is what the engine says.

Environment variables are returned by name only; values never leave this module.
"""

from __future__ import annotations

import os
import typing as t

try:
    import docker
    from docker.errors import DockerException

    HAS_DOCKER = True
except ImportError:  # pragma: no cover - reported through missing_required_lib
    docker = None  # type: ignore[assignment]
    DockerException = Exception  # type: ignore[assignment,misc]
    HAS_DOCKER = False

try:
    import yaml
except ImportError:  # pragma: no cover - then no Compose file is read: every service must have containers
    yaml = None  # type: ignore[assignment]

L_PROJECT = "com.docker.compose.project"
L_SERVICE = "com.docker.compose.service"
L_HASH = "com.docker.compose.config-hash"
L_WORKDIR = "com.docker.compose.project.working_dir"
L_FILES = "com.docker.compose.project.config_files"
L_ONEOFF = "com.docker.compose.oneoff"
L_NUMBER = "com.docker.compose.container-number"
L_VERSION = "com.docker.compose.version"
L_VOLUME = "com.docker.compose.volume"
L_NETWORK = "com.docker.compose.network"


class ComposeInfoError(Exception):
    pass


def client(docker_host: str | None = None, timeout: int = 60) -> t.Any:
    if not HAS_DOCKER:
        raise ComposeInfoError("the Python library 'docker' is required")
    try:
        if docker_host:
            cli = docker.DockerClient(base_url=docker_host, timeout=timeout)
        else:
            cli = docker.from_env(timeout=timeout)
        cli.ping()
        return cli
    except ValueError as exc:  # docker-py's parse_host: '::bad::', 'tcp://h:99999', '[1]', an unclosed IPv6 bracket
        where = "option 'docker_host'" if docker_host else "DOCKER_HOST"
        raise ComposeInfoError(f"{where} is not a valid Docker host URL: {exc}") from exc
    except DockerException as exc:
        where = docker_host or "DOCKER_HOST/default socket"
        raise ComposeInfoError(f"cannot reach the Docker engine at {where}: {exc}") from exc


def dir_size(path: str) -> int | None:
    """Bytes used by the files under ``path`` (not following symlinks); None when unreadable."""
    total = 0
    try:
        if os.path.isfile(path):
            return os.lstat(path).st_size
        for root, _dirs, files in os.walk(path):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except OSError:
                    continue
    except OSError:
        return None
    return total if os.path.exists(path) else None


def _ports(attrs: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    out = []
    for spec, bindings in sorted(((attrs.get("NetworkSettings") or {}).get("Ports") or {}).items()):
        port, _sep, proto = spec.partition("/")
        for b in bindings or []:
            out.append({"container_port": int(port), "protocol": proto or "tcp",
                        "host_ip": b.get("HostIp", ""), "host_port": int(b["HostPort"]) if b.get("HostPort") else None})
    return out


def _container(c: t.Any, sizes: bool) -> dict[str, t.Any]:
    attrs = c.attrs
    state = attrs.get("State") or {}
    cfg = attrs.get("Config") or {}
    host = attrs.get("HostConfig") or {}
    mounts = []
    for m in attrs.get("Mounts") or []:
        entry = {"type": m.get("Type"), "source": m.get("Source"), "destination": m.get("Destination"),
                 "read_only": not m.get("RW", True)}
        if m.get("Type") == "volume":
            entry["name"] = m.get("Name")
        if sizes and m.get("Type") == "bind" and m.get("Source"):
            entry["size_bytes"] = dir_size(m["Source"])
        mounts.append(entry)
    return {
        "name": c.name,
        "id": c.id[:12],
        "number": int(c.labels.get(L_NUMBER, "1") or 1),
        "state": state.get("Status"),
        "running": bool(state.get("Running")),
        "health": (state.get("Health") or {}).get("Status"),
        "exit_code": state.get("ExitCode"),
        "started_at": state.get("StartedAt"),
        "image": cfg.get("Image"),
        "image_id": attrs.get("Image", "")[:19],
        "ports": _ports(attrs),
        "networks": sorted(((attrs.get("NetworkSettings") or {}).get("Networks") or {}).keys()),
        "mounts": mounts,
        "env_names": sorted({e.split("=", 1)[0] for e in cfg.get("Env") or []}),
        "restart_policy": (host.get("RestartPolicy") or {}).get("Name") or "no",
        "stop_timeout": cfg.get("StopTimeout"),
        "config_hash": c.labels.get(L_HASH),
    }


def discover(cli: t.Any, project: str | None = None, sizes: bool = True) -> dict[str, dict[str, t.Any]]:
    """All Compose projects the engine knows (or only ``project``), keyed by project name."""
    filters = {"label": f"{L_PROJECT}={project}"} if project else {"label": L_PROJECT}
    try:
        containers = cli.containers.list(all=True, filters=filters)
        volumes = cli.volumes.list(filters={"label": f"{L_PROJECT}={project}"} if project else {"label": L_PROJECT})
        networks = cli.networks.list(filters={"label": f"{L_PROJECT}={project}"} if project else {"label": L_PROJECT})
        usage = {v["Name"]: v.get("UsageData") or {} for v in (cli.api.df().get("Volumes") or [])} if sizes else {}
    except DockerException as exc:
        raise ComposeInfoError(f"Docker API error while listing Compose resources: {exc}") from exc
    projects: dict[str, dict[str, t.Any]] = {}

    def proj(name: str) -> dict[str, t.Any]:
        empty = {"name": name, "working_dir": None, "config_files": [], "compose_version": None,
                 "services": {}, "volumes": {}, "networks": []}
        return projects.setdefault(name, empty)

    for c in sorted(containers, key=lambda x: (x.labels.get(L_SERVICE, ""), x.name)):
        if c.labels.get(L_ONEOFF, "False") == "True":
            continue
        p = proj(c.labels[L_PROJECT])
        p["working_dir"] = p["working_dir"] or c.labels.get(L_WORKDIR)
        files = c.labels.get(L_FILES)
        if files and not p["config_files"]:
            p["config_files"] = [f for f in files.split(",") if f]
        p["compose_version"] = p["compose_version"] or c.labels.get(L_VERSION)
        svc = p["services"].setdefault(c.labels.get(L_SERVICE, c.name), {"containers": [], "images": []})
        info = _container(c, sizes)
        svc["containers"].append(info)
        if info["image"] not in svc["images"]:
            svc["images"].append(info["image"])
    for v in volumes:
        p = proj(v.attrs.get("Labels", {}).get(L_PROJECT))
        size = usage.get(v.name, {}).get("Size")
        p["volumes"][v.name] = {
            "name": v.name,
            "compose_name": (v.attrs.get("Labels") or {}).get(L_VOLUME),
            "driver": v.attrs.get("Driver"),
            "mountpoint": v.attrs.get("Mountpoint"),
            "size_bytes": size if isinstance(size, int) and size >= 0 else None,
            "used_by": sorted({c["name"] for s in p["services"].values() for c in s["containers"]
                               for m in c["mounts"] if m.get("name") == v.name}),
        }
    for n in networks:
        proj(n.attrs.get("Labels", {}).get(L_PROJECT))["networks"].append(n.name)
    for p in projects.values():
        p["networks"].sort()
        for svc in p["services"].values():
            states = [c["state"] for c in svc["containers"]]
            svc["state"] = states[0] if len(set(states)) == 1 else "mixed"
            svc["running"] = sum(1 for c in svc["containers"] if c["running"])
    return projects


def require_project(projects: dict[str, dict[str, t.Any]], name: str) -> dict[str, t.Any]:
    if name not in projects:
        known = ", ".join(sorted(projects)) or "none"
        raise ComposeInfoError(f"no Compose project named '{name}' on this Docker engine (projects found: {known})")
    return projects[name]


def declared_services(project: dict[str, t.Any]) -> tuple[set[str], list[str]]:
    """The service names the project's Compose files declare (the files its containers were created from, read on
    this host), and the files that could not be read. Names only: a service behind a profile that was never enabled
    is declared but has no container."""
    names: set[str] = set()
    unreadable = []
    for path in project.get("config_files") or []:
        text = _read_text(path) if yaml is not None else None
        try:
            doc = yaml.safe_load(text) if text is not None else None
        except yaml.YAMLError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("services", {}), dict):
            unreadable.append(path)
            continue
        names.update(doc.get("services") or {})
    return names, unreadable


def mark_not_created(project: dict[str, t.Any]) -> None:
    """Adds ``not_created``: services the Compose files declare that have no container (never created), and
    ``unreadable_config_files``."""
    declared, unreadable = declared_services(project)
    project["not_created"] = sorted(declared - set(project["services"]))
    project["unreadable_config_files"] = unreadable


def require_services(project: dict[str, t.Any], names: t.Iterable[str]) -> None:
    """Every name is a service of the project: one with containers, or one its Compose files declare that was never
    created (nothing runs, so there is nothing to retire; see ``not_created``). Any other name is refused."""
    known = set(project["services"]) | set(project.get("not_created") or [])
    unknown = [n for n in names if n not in known]
    if unknown:
        unread = project.get("unreadable_config_files") or []
        why = f"; Compose files that could not be read here: {', '.join(unread)}" if unread else ""
        raise ComposeInfoError(f"project '{project['name']}' has no service(s) {', '.join(unknown)} "
                               f"(services with containers: {', '.join(sorted(project['services']))}; declared, "
                               f"never created: {', '.join(project.get('not_created') or []) or 'none'}{why})")


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read()
    except OSError:
        return None


def _loopback_rx(text: str) -> int:
    for line in text.splitlines()[2:]:
        name, _sep, fields = line.partition(":")
        if name.strip() == "lo":
            return int(fields.split()[1])
    return 0


def _table(text: str | None, prefix: str) -> dict[str, int]:
    """``/proc/net/snmp`` and ``/proc/net/netstat`` style: a header line and a value line per prefix."""
    rows = [line.split()[1:] for line in (text or "").splitlines() if line.startswith(prefix + ":")]
    return dict(zip(rows[0], map(int, rows[1]), strict=False)) if len(rows) >= 2 else {}


def _pairs(text: str | None) -> dict[str, int]:
    """``/proc/net/snmp6`` style: one ``name value`` pair per line."""
    out = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _proc_unicast_rx(pid: int, closing: bool = False, proc: str = "/proc") -> int | None:
    """A counter of TCP segments and UDP datagrams received from outside ``pid``'s network namespace.

    ARP, IPv6 neighbour discovery and other ICMP chatter between containers on the Compose network
    (they answer each other's probes when a neighbour stops or starts) are not traffic to the
    service, so they are left out: TCP segments + UDP datagrams delivered in the namespace, minus the
    packets that went over loopback (the container's own health check, Docker's embedded DNS). The
    files are read in an order (reversed for the ``closing`` reading) such that a packet arriving
    between two reads can only make the difference of two readings smaller, never report traffic that
    did not arrive.
    """
    base = f"{proc}/{pid}/net"

    def loop() -> int | None:
        text = _read(f"{base}/dev")
        return None if text is None else _loopback_rx(text)

    def transport() -> int | None:
        text = _read(f"{base}/snmp")
        if text is None:
            return None
        six = _pairs(_read(f"{base}/snmp6"))
        return (_table(text, "Tcp").get("InSegs", 0) + _table(text, "Udp").get("InDatagrams", 0)
                + six.get("Udp6InDatagrams", 0))

    if closing:
        seen, lo = transport(), loop()
    else:
        lo, seen = loop(), transport()
    if seen is None or lo is None:
        return None
    return seen - lo


def rx_packets(cli: t.Any, container: str, closing: bool = False) -> int | None:
    """Packets received on the container's network interfaces (None when it is not running).

    Read from the container's network namespace (TCP and UDP from outside, see ``_proc_unicast_rx``) when
    the engine is local; the engine's stats API (all packets) is the fallback (it omits network
    figures for some containers).
    """
    try:
        attrs = cli.api.inspect_container(container)
    except DockerException as exc:
        raise ComposeInfoError(f"cannot inspect container {container}: {exc}") from exc
    state = attrs.get("State") or {}
    if not state.get("Running"):
        return None
    local = _proc_unicast_rx(int(state.get("Pid") or 0), closing) if state.get("Pid") else None
    if local is not None:
        return local
    try:
        stats = cli.api.stats(container, stream=False)
    except DockerException as exc:
        raise ComposeInfoError(f"cannot read network counters of container {container}: {exc}") from exc
    networks = stats.get("networks")
    if not networks:
        raise ComposeInfoError(f"the engine reports no network counters for container {container}; "
                               "run the module on the Docker host itself")
    return sum(int(n.get("rx_packets", 0)) for n in networks.values())


def observe_idle(cli: t.Any, containers: list[str], window: float,
                 sleep: t.Callable[[float], None]) -> dict[str, t.Any]:
    """Packets each running container received during ``window`` seconds."""
    before = {c: rx_packets(cli, c) for c in containers}
    sleep(window)
    after = {c: rx_packets(cli, c, closing=True) for c in containers}
    per = {c: max(0, after[c] - before[c]) if before[c] is not None and after[c] is not None else 0 for c in containers}
    return {"window_seconds": window, "packets": per, "total_packets": sum(per.values()),
            "not_running": sorted(c for c in containers if after[c] is None)}
