"""compose_to_k8s on constructs of real-world Compose files (issue 24): profiles, include, external volumes, one-shot
services, placement, long syntax, output the API server would reject, healthcheck headers, networks."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import (
    _compose_load,
    _compose_translate,
    _compose_translate_context,
    _compose_values,
    _k8s_validate,
)
from ansible_collections.sophia.migrate.plugins.modules import compose_to_k8s
from support.modules import run_module

SCHEMAS = _k8s_validate.Schemas()


def _write(tmp_path, text, name="compose.yaml"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def _translate(path, profiles=(), variables=None, **opts):
    project = _compose_load.load_project([path], profiles=profiles, variables=variables)
    return _compose_translate.translate(project, _compose_translate_context.Options(**opts))


def _docs(out):
    return [d for name in sorted(out["objects"]) for d in out["objects"][name]]


def _kind(out, service, kind):
    return next(d for d in out["objects"][service] if d["kind"] == kind)


def _pod(out, service):
    kinds = {d["kind"]: d for d in out["objects"][service]}
    return (kinds.get("Deployment") or kinds.get("Job") or kinds["StatefulSet"])["spec"]["template"]["spec"]


def _valid(out):
    summary = _k8s_validate.validate_documents([(d["kind"], d) for d in _docs(out)], SCHEMAS, strict=True)
    assert summary["errors"] == []
    return summary


def _notes(out, service):
    return {n["field"]: n["note"] for n in out["notes"] if n["service"] == service}


# ----------------------------------------------------------------------------- profiles

PROFILED = """
services:
  es: {image: elasticsearch:8, profiles: [elasticsearch]}
  os: {image: opensearchproject/opensearch:2, profiles: [opensearch, search]}
"""


def test_every_service_behind_an_inactive_profile_is_an_error_naming_the_profiles(tmp_path):
    path = _write(tmp_path, PROFILED)
    with pytest.raises(_compose_values.ComposeError,
                       match=r"no service is active: every service belongs to a profile "
                             r"\(elasticsearch, opensearch, search\)"):
        _translate(path)
    assert sorted(_translate(path, profiles=("search",))["services"]) == ["os"]
    assert sorted(_translate(path, profiles=("*",))["services"]) == ["es", "os"]


def test_module_profiles_refusal_and_inactive_service_option(tmp_path, capsys):
    path = _write(tmp_path, PROFILED)
    result = run_module(compose_to_k8s, {"src": [path]}, capsys)
    assert result["failed"] is True and "profile (elasticsearch, opensearch, search)" in result["msg"]
    result = run_module(compose_to_k8s, {"src": [path], "profiles": ["search"], "services": ["es"]}, capsys)
    assert result["failed"] is True
    assert "es belongs to the profile(s) elasticsearch, which the option profiles does not activate" in result["msg"]


# ----------------------------------------------------------------------------- include

def test_include_resolves_relative_paths_from_the_included_file(tmp_path):
    _write(tmp_path, """
        services:
          db:
            image: postgres:16
            env_file: db.env
            volumes: ["./init:/docker-entrypoint-initdb.d:ro", "dbdata:/var/lib/postgresql/data"]
        volumes: {dbdata: {}}
        """, "sub/db.yaml")
    (tmp_path / "sub" / "db.env").write_text("POSTGRES_DB=app\n")
    path = _write(tmp_path, """
        include:
          - sub/db.yaml
        services:
          web: {image: nginx:1.27, depends_on: [db]}
        """)
    out = _translate(path)
    assert sorted(out["services"]) == ["db", "web"]
    assert _kind(out, "db", "ConfigMap")["data"] == {"POSTGRES_DB": "app"}
    assert {"name": "vol-0", "hostPath": {"path": str(tmp_path / "sub" / "init")}} in _pod(out, "db")["volumes"]
    _valid(out)


@pytest.mark.parametrize("main,included,message", [
    ("include: [missing.yaml]\nservices: {web: {image: a}}\n", None,
     r"include\[0\]: included file .*missing.yaml not found"),
    ("include: [other.yaml]\nservices: {web: {image: a}}\n", "services: {web: {image: b}}\n",
     r"services.web is defined both in .*compose.yaml and in the included .*other.yaml"),
    ("include: [other.yaml]\nservices: {web: {image: a}}\n", "include: [compose.yaml]\nservices: {api: {image: b}}\n",
     r"compose.yaml includes itself \(circular include\)"),
    ("include: ['oci://registry/app:1']\nservices: {web: {image: a}}\n", None,
     r"remote include 'oci://registry/app:1' is not supported"),
])
def test_include_errors_are_clean(tmp_path, main, included, message):
    if included:
        _write(tmp_path, included, "other.yaml")
    with pytest.raises(_compose_values.ComposeError, match=message):
        _translate(_write(tmp_path, main))


# ----------------------------------------------------------------------------- external volumes

EXTERNAL = """
services:
  app:
    image: example/app:1
    volumes: ["media:/srv/media", "cache:/cache"]
volumes:
  media: {external: true}
  cache: {external: true, name: shared-cache}
"""


def test_external_volume_is_refused_without_a_claim_naming_the_volume(tmp_path):
    with pytest.raises(_compose_values.ComposeError,
                       match=r"volume 'media' is external .* external_volumes: \{media: "):
        _translate(_write(tmp_path, EXTERNAL))


def test_external_volume_maps_to_the_existing_claim(tmp_path):
    out = _translate(_write(tmp_path, EXTERNAL), external_volumes={"media": "media-pvc", "shared-cache": "cache-pvc"})
    volumes = _pod(out, "app")["volumes"]
    assert {"name": "media", "persistentVolumeClaim": {"claimName": "media-pvc"}} in volumes
    assert {"name": "cache", "persistentVolumeClaim": {"claimName": "cache-pvc"}} in volumes
    assert not [d for d in _docs(out) if d["kind"] == "PersistentVolumeClaim"]  # no new, empty claim
    _valid(out)


def test_module_external_volumes_option(tmp_path, capsys):
    path = _write(tmp_path, EXTERNAL)
    refused = run_module(compose_to_k8s, {"src": [path]}, capsys)
    assert refused["failed"] is True and "volume 'media' is external" in refused["msg"]
    ok = run_module(compose_to_k8s, {"src": [path], "external_volumes": {"media": "m", "cache": "c"}}, capsys)
    assert not ok.get("failed") and ok["validation"]["errors"] == []


# ----------------------------------------------------------------------------- one-shot services and placement

ONESHOT = """
services:
  migrate: {image: example/api:2, command: python manage.py migrate, restart: "no"}
  seed:
    image: example/api:2
    deploy: {restart_policy: {condition: on-failure, max_attempts: 3}}
  once:
    image: example/api:2
    deploy: {restart_policy: {condition: none}, replicas: 2}
  web: {image: nginx:1.27, ports: ["80"], restart: on-failure}
  api: {image: example/api:2, restart: always}
"""


def test_one_shot_services_become_jobs_never_always_restarting_deployments(tmp_path):
    out = _translate(_write(tmp_path, ONESHOT))
    migrate = _kind(out, "migrate", "Job")
    assert migrate["apiVersion"] == "batch/v1"
    assert migrate["spec"]["backoffLimit"] == 0
    assert migrate["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert migrate["spec"]["template"]["spec"]["containers"][0]["args"] == ["python", "manage.py", "migrate"]
    seed = _kind(out, "seed", "Job")
    assert (seed["spec"]["backoffLimit"], seed["spec"]["template"]["spec"]["restartPolicy"]) == (3, "OnFailure")
    once = _kind(out, "once", "Job")
    assert (once["spec"]["completions"], once["spec"]["parallelism"]) == (2, 2)
    for service in ("migrate", "seed", "once"):
        assert out["services"][service]["kind"] == "Job"
        assert not [d for d in out["objects"][service] if d["kind"] in ("Deployment", "StatefulSet")]
    # a server with on-failure stays a Deployment, with the warning; restart always is a plain Deployment
    assert out["services"]["web"]["kind"] == "Deployment"
    assert any("service web: restart 'on-failure'" in w for w in out["warnings"])
    assert out["services"]["api"]["kind"] == "Deployment"
    assert "migrate" in out["order"]["stateless"] and "migrate" in out["order"]["apply"]
    _valid(out)


def test_one_shot_service_listed_as_stateful_is_refused(tmp_path):
    with pytest.raises(_compose_values.ComposeError,
                       match=r"service migrate: restart 'no': a one-shot service becomes a "
                             r"Job, but the option stateful lists it"):
        _translate(_write(tmp_path, ONESHOT), stateful=("migrate",))


def test_placement_constraints_become_node_affinity(tmp_path):
    out = _translate(_write(tmp_path, """
        services:
          redis:
            image: redis:7
            deploy:
              placement:
                constraints:
                  - node.hostname == machine
                  - node.labels.disk != hdd
                  - node.platform.arch == x86_64
                  - engine.labels.operatingsystem == ubuntu 14.04
                preferences:
                  - spread: node.labels.zone
        """))
    terms = _pod(out, "redis")["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["machine"]},
        {"key": "disk", "operator": "NotIn", "values": ["hdd"]},
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
    ]}]
    notes = _notes(out, "redis")
    assert "engine.labels.operatingsystem" in notes["deploy.placement.constraints[3]"]
    assert "not carried" in notes["deploy.placement.preferences[0]"]
    assert not [u for u in out["unsupported"] if u["field"].startswith("deploy.placement")]
    _valid(out)


# ----------------------------------------------------------------------------- long syntax

LONG = """
services:
  app:
    image: example/app:1
    privileged: false
    ports:
      - {target: 80, published: 8080, mode: host}
      - {target: 9090, mode: host}
    volumes:
      - {type: volume, source: data, target: /data, volume: {subpath: sub/dir, nocopy: true}}
      - {type: bind, source: /var/lib/kubelet, target: /kubelet, bind: {propagation: rslave, create_host_path: true}}
      - {type: bind, source: /mnt, target: /mnt, bind: {propagation: rshared}}
      - {type: tmpfs, target: /scratch, tmpfs: {size: 64m, mode: 1777}}
      - ./conf:/etc/app:ro,z
    tmpfs: ["/run:size=16m,mode=1777"]
volumes: {data: {}}
"""


def test_long_syntax_is_carried_or_noted(tmp_path):
    out = _translate(_write(tmp_path, LONG))
    container = _pod(out, "app")["containers"][0]
    assert {"containerPort": 80, "protocol": "TCP", "hostPort": 8080} in container["ports"]
    assert {"containerPort": 9090, "protocol": "TCP"} in container["ports"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/data"]["subPath"] == "sub/dir"
    assert mounts["/kubelet"]["mountPropagation"] == "HostToContainer"
    assert "mountPropagation" not in mounts["/mnt"]  # Bidirectional needs a privileged container
    volumes = {v["name"]: v for v in _pod(out, "app")["volumes"]}
    assert volumes["vol-1"]["hostPath"] == {"path": "/var/lib/kubelet", "type": "DirectoryOrCreate"}
    assert volumes["vol-3"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}
    assert volumes["tmpfs-0"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Mi"}
    assert mounts["/run"]["name"] == "tmpfs-0"
    notes = _notes(out, "app")
    assert "hostPort 8080" in notes["ports.80"] and "no hostPort" in notes["ports.9090"]
    assert "nocopy" in notes["volumes[0].nocopy"]
    assert "privileged" in notes["volumes[2].bind.propagation"]
    assert "not carried" in notes["volumes[3].tmpfs.mode"] and "not carried" in notes["tmpfs[0].mode"]
    assert "SELinux" in notes["volumes[4].bind.selinux"]
    _valid(out)


def test_bidirectional_propagation_in_a_privileged_container(tmp_path):
    out = _translate(_write(tmp_path, """
        services:
          csi:
            image: example/csi:1
            privileged: true
            volumes: [{type: bind, source: /mnt, target: /mnt, bind: {propagation: rshared}}]
        """))
    assert _pod(out, "csi")["containers"][0]["volumeMounts"][0]["mountPropagation"] == "Bidirectional"
    _valid(out)


# ----------------------------------------------------------------------------- output the API server rejects

def test_host_gateway_is_noted_not_emitted_as_an_ip(tmp_path):
    out = _translate(_write(tmp_path, """
        services:
          app:
            image: example/app:1
            extra_hosts: ["host.docker.internal:host-gateway", "db.local=10.0.0.5"]
        """))
    assert _pod(out, "app")["hostAliases"] == [{"ip": "10.0.0.5", "hostnames": ["db.local"]}]
    assert "host-gateway" in _notes(out, "app")["extra_hosts.host.docker.internal"]
    _valid(out)


@pytest.mark.parametrize("text,message", [
    ("services: {app: {image: a, extra_hosts: ['db:10.0.0.999']}}\n",
     r"service app: extra_hosts: db: '10.0.0.999' is not an IP address"),
    ("services: {app: {image: a, extra_hosts: ['DB_Host:10.0.0.9']}}\n",
     r"service app: extra_hosts: 'DB_Host' is not a valid host name"),
    ("services: {1api: {image: a, ports: ['80']}}\n",
     r"Service/1api: name '1api' is not a valid Service name \(DNS-1035 label\)"),
    ("services: {app: {image: 'elasticsearch:${STACK_VERSION}'}}\n",
     r"service app: image 'elasticsearch:' is not a valid image reference \(variables not set: STACK_VERSION"),
])
def test_invalid_output_is_refused_before_the_api_server_sees_it(tmp_path, text, message):
    with pytest.raises(_compose_values.ComposeError, match=message):
        _translate(_write(tmp_path, text))


def test_node_selector_values_are_checked(tmp_path):
    path = _write(tmp_path, "services: {app: {image: a, gpus: 1}}\n")
    with pytest.raises(_compose_values.ComposeError,
                       match=r"nodeSelector gpu='not a label value' is not a valid label"):
        _translate(path, gpu_node_selector={"gpu": "not a label value"})


def test_unset_variables_are_reported(tmp_path):
    out = _translate(_write(tmp_path, "services: {app: {image: a, environment: {URL: '${BASE_URL}/x'}}}\n"))
    assert "variables not set, replaced by a blank string as Compose does: BASE_URL" in out["warnings"]


# ----------------------------------------------------------------------------- healthcheck headers

@pytest.mark.parametrize("test,expected", [
    (["CMD", "curl", "-f", "-H", "Host: app.example.com", "http://localhost:8080/health"],
     {"path": "/health", "port": 8080, "scheme": "HTTP",
      "httpHeaders": [{"name": "Host", "value": "app.example.com"}]}),
    ("curl -fsS --header 'X-Probe: yes' -H 'Accept: application/json' http://localhost/ready",
     {"path": "/ready", "port": 80, "scheme": "HTTP",
      "httpHeaders": [{"name": "X-Probe", "value": "yes"}, {"name": "Accept", "value": "application/json"}]}),
    ("wget -qO- --header='X-Key: 1' http://127.0.0.1:9000/",
     {"path": "/", "port": 9000, "scheme": "HTTP", "httpHeaders": [{"name": "X-Key", "value": "1"}]}),
])
def test_curl_headers_are_kept_in_http_get(tmp_path, test, expected):
    path = _write(tmp_path, "services: {app: {image: a, ports: ['80'], healthcheck: {test: %s}}}\n" % json.dumps(test))
    probe = _pod(_translate(path), "app")["containers"][0]["livenessProbe"]
    assert probe["httpGet"] == expected


def test_curl_options_an_http_get_cannot_carry_keep_an_exec_probe(tmp_path):
    test = "curl -f -u admin:admin -X POST http://localhost:8080/health"
    path = _write(tmp_path, "services: {app: {image: a, healthcheck: {test: %s}}}\n" % json.dumps(test))
    probe = _pod(_translate(path), "app")["containers"][0]["livenessProbe"]
    assert probe["exec"]["command"] == ["/bin/sh", "-c", test]


# ----------------------------------------------------------------------------- networks

NETWORKS = """
name: shop
services:
  web: {image: nginx:1.27, ports: ["8080:80"], networks: [front]}
  api: {image: example/api:1, expose: ["5000"], networks: [front, back]}
  db: {image: example/db:1, networks: {back: {}}}
  tool: {image: busybox:1.36}
networks: {front: {}, back: {internal: true}}
"""


def test_networks_become_network_policies_on_request(tmp_path):
    path = _write(tmp_path, NETWORKS)
    plain = _translate(path)
    assert not [d for d in _docs(plain) if d["kind"] == "NetworkPolicy"]
    assert "network_policies=true" in " ".join(n["note"] for n in plain["notes"] if n["field"] == "networks")
    out = _translate(path, network_policies=True)
    policies = {d["metadata"]["name"]: d for d in _docs(out) if d["kind"] == "NetworkPolicy"}
    assert sorted(policies) == ["shop-net-back", "shop-net-default", "shop-net-front", "web-published"]
    front = policies["shop-net-front"]["spec"]
    selector = {"matchLabels": {"network.sophia.migrate/front": "true"}}
    assert front == {"podSelector": selector, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": selector}]}]}
    labels = {s: _kind(out, s, "Deployment")["spec"]["template"]["metadata"]["labels"] for s in out["services"]}
    assert labels["api"]["network.sophia.migrate/front"] == labels["api"]["network.sophia.migrate/back"] == "true"
    assert "network.sophia.migrate/front" not in labels["db"]
    assert labels["tool"]["network.sophia.migrate/default"] == "true"
    assert policies["web-published"]["spec"]["ingress"] == [{"ports": [{"port": 80, "protocol": "TCP"}]}]
    assert "NetworkPolicy/shop-net-back" in out["services"]["api"]["objects"]
    _valid(out)


def test_undeclared_network_is_refused(tmp_path):
    path = _write(tmp_path, "services: {app: {image: a, networks: [ghost]}}\n")
    with pytest.raises(_compose_values.ComposeError, match=r"service app: networks: 'ghost' is not declared"):
        _translate(path, network_policies=True)


def test_module_writes_network_policies(tmp_path, capsys):
    result = run_module(compose_to_k8s, {"src": [_write(tmp_path, NETWORKS)], "network_policies": True,
                                         "dest": str(tmp_path / "out")}, capsys)
    assert not result.get("failed")
    assert "kind: NetworkPolicy" in (tmp_path / "out" / "api.yaml").read_text()
    assert os.path.exists(result["files"]["db"])


# ----------------------------------------------------------------------------- malformed new constructs

@pytest.mark.parametrize("text,message", [
    ("include: 5\nservices: {a: {image: x}}\n", r"include: must be a list"),
    ("include: [{}]\nservices: {a: {image: x}}\n", r"include\[0\]: needs a path"),
    ("services: {a: {image: x, deploy: {placement: {constraints: 'node.role == manager'}}}}\n",
     r"service a: deploy.placement.constraints: must be a list"),
    ("services: {a: {image: x, deploy: {restart_policy: {condition: on-failure, max_attempts: x}}}}\n",
     r"service a: deploy.restart_policy.max_attempts: must be a non-negative integer"),
    ("services: {a: {image: x, volumes: [{type: volume, source: v, target: /a, volume: 5}]}}\nvolumes: {v: {}}\n",
     r"service a: volumes\[0\]: volume: must be a mapping"),
    ("services: {a: {image: x, tmpfs: ['/run:size=huge']}}\n", r"service a: tmpfs\[0\] size: invalid memory value"),
    ("services: {a: {image: x, ports: [{target: 80, mode: host, published: 99999}]}}\n",
     r"hostPort 99999 out of range"),
    ("services: {a: {image: x, profiles: test}}\n", r"service a: profiles: must be a list"),
])
def test_malformed_new_constructs_fail_cleanly(tmp_path, text, message):
    with pytest.raises(_compose_values.ComposeError, match=message):
        _translate(_write(tmp_path, text), profiles=("*",), network_policies=True)


def test_unquoted_restart_no_is_a_job(tmp_path):
    out = _translate(_write(tmp_path, "services: {a: {image: x, restart: no}}\n"))
    assert out["services"]["a"]["kind"] == "Job"
