"""Verify host_python: the pinned modules import from the virtualenv; the system Python is left alone."""


def test_venv_imports_the_pinned_modules(host):
    python = "/opt/sophia-migrate/venv/bin/python"
    cmd = host.run(f"{python} -c 'import redis, yaml; print(redis.__version__, yaml.__version__)'")
    assert cmd.rc == 0, cmd.stderr
    assert cmd.stdout.split() == ["8.1.0", "6.0.4"]


def test_system_python_is_left_alone(host):
    assert host.run("/usr/bin/python3 -c 'import redis'").rc != 0
    # Debian's Docker SDK (prepare installs it) stays the system's
    assert host.run("/usr/bin/python3 -c 'import docker; print(docker.__version__)'").stdout.startswith("5.")


def test_docker_sdk_works_beside_the_system_one(host):
    """The virtualenv's Docker SDK and urllib3 are its own pins, not the system's SDK 5 beside the virtualenv's
    urllib3 2 (which failed every call with "unexpected keyword argument 'chunked'"): a call to an absent engine
    fails on the connection."""
    python = "/opt/sophia-migrate/venv/bin/python"
    script = ("import docker, urllib3\n"
              "print(docker.__version__, urllib3.__version__)\n"
              "try:\n    docker.APIClient(base_url='unix:///nonexistent.sock', version='1.41').ping()\n"
              "except Exception as exc:\n    print(type(exc).__name__, exc)\n")
    cmd = host.run(f"{python} -c \"{script}\"")
    assert cmd.rc == 0, cmd.stderr
    assert cmd.stdout.split()[0] == "7.2.0", cmd.stdout
    assert "chunked" not in cmd.stdout and "ConnectionError" in cmd.stdout, cmd.stdout


def test_venv_sees_system_packages(host):
    cfg = host.file("/opt/sophia-migrate/venv/pyvenv.cfg")
    assert "include-system-site-packages = true" in cfg.content_string
