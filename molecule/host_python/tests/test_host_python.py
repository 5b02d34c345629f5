"""Verify host_python: the pinned modules import from the virtualenv; the system Python is left alone."""


def test_venv_imports_the_pinned_modules(host):
    python = "/opt/sophia-migrate/venv/bin/python"
    cmd = host.run(f"{python} -c 'import redis, yaml; print(redis.__version__, yaml.__version__)'")
    assert cmd.rc == 0, cmd.stderr
    assert cmd.stdout.split() == ["8.1.0", "6.0.4"]


def test_system_python_is_left_alone(host):
    assert host.run("/usr/bin/python3 -c 'import redis'").rc != 0


def test_venv_sees_system_packages(host):
    cfg = host.file("/opt/sophia-migrate/venv/pyvenv.cfg")
    assert "include-system-site-packages = true" in cfg.content_string
