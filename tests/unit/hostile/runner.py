"""Run one module's ``main()`` once per case, each in a forked child with a hard timeout (used by test_hostile_inputs).

Reads ``{"module": ..., "timeout": s, "cases": [{"args": {...}, "cwd": ...}, ...]}`` as JSON on stdin and writes one
result per case as JSON on stdout: ``{"status": "ok" | "crash" | "hang" | "no-json", "detail": ..., "result": ...}``.

The module and its libraries are imported once; each case runs in ``os.fork()``'s copy of this process, so a case
costs milliseconds, cannot leak state into the next one, and is killed (its whole process group) when it overruns.
In the child the network is fenced to loopback: a name other than a loopback one does not resolve, a connection or
datagram to an address other than a loopback one is refused, so hostile host names and URLs never leave the machine.
Waits of up to a minute are shortened to milliseconds (retries against closed ports cost nothing); longer, negative
or NaN waits are left as they are, so they raise or hang as they would for real.
"""

from __future__ import annotations

import contextlib
import importlib
import ipaddress
import json
import os
import select
import signal
import socket
import sys
import tempfile
import time
import traceback
import typing as t

from ansible.module_utils.common import warnings as module_warnings
from ansible.module_utils.testing import patch_module_args

COLLECTION = "ansible_collections.sophia.migrate.plugins.modules."
CRASH_RC = 97


def _loopback(host: t.Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _fence_network() -> None:
    """Make every non-loopback name unresolvable and every non-loopback address unreachable in this process."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        if host is None or _loopback(host):
            return real_getaddrinfo(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (hostile-input fence)")

    def gethostbyname(host: t.Any) -> t.Any:
        if _loopback(host):
            return "127.0.0.1"
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (hostile-input fence)")

    def guard(method: t.Callable[..., t.Any], addr_pos: int) -> t.Callable[..., t.Any]:
        def wrapper(self: socket.socket, *args: t.Any) -> t.Any:
            addr = args[addr_pos] if len(args) > addr_pos else None
            if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(addr, tuple) and not _loopback(addr[0]):
                raise ConnectionRefusedError(111, "Connection refused (hostile-input fence)")
            return method(self, *args)
        return wrapper

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.gethostbyname = gethostbyname  # type: ignore[assignment]
    socket.socket.connect = guard(socket.socket.connect, 0)  # type: ignore[method-assign]
    socket.socket.connect_ex = guard(socket.socket.connect_ex, 0)  # type: ignore[method-assign]
    socket.socket.sendto = guard(socket.socket.sendto, -1)  # type: ignore[method-assign]


def _shorten_waits() -> None:
    """Waits of up to a minute (retry backoff, poll intervals) take a few milliseconds; any other wait (negative,
    NaN, infinite, huge) is passed on as it is, so it raises or hangs exactly as it would in production."""
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        if isinstance(seconds, (int, float)) and 0 <= seconds <= 60:
            real_sleep(min(seconds, 0.005))
        else:
            real_sleep(seconds)

    time.sleep = sleep  # type: ignore[assignment]


def _child(module: t.Any, case: dict[str, t.Any], out_path: str, err_path: str) -> t.NoReturn:
    os.setpgid(0, 0)
    out_fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err_fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    sys.stdout = os.fdopen(1, "w", closefd=False)
    sys.stderr = os.fdopen(2, "w", closefd=False)
    rc = 0
    try:
        os.chdir(case["cwd"])
        _fence_network()
        module_warnings._global_warnings.clear()
        module_warnings._global_deprecations.clear()
        with patch_module_args(case["args"]):
            module.main()
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # an exception escaping main() is exactly what this harness looks for
        traceback.print_exc()
        rc = CRASH_RC
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(rc)


def _warm_up(module: t.Any, case: dict[str, t.Any], timeout: float) -> None:
    """Run the first case here once, output dropped, so that the libraries a module imports on first use (qdrant-client,
    kubernetes-validate, ...) are loaded before the forks instead of once per case."""
    _fence_network()

    def expired(*_args: t.Any) -> t.NoReturn:
        raise TimeoutError("warm-up took too long")

    saved = os.dup(1), os.dup(2), os.getcwd()
    null_fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null_fd, 1)
    os.dup2(null_fd, 2)
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        os.chdir(case["cwd"])
        with patch_module_args(case["args"]):
            module.main()
    except BaseException:  # noqa: S110 - the same case runs again, judged, in a child
        pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(null_fd)
        os.chdir(saved[2])
        module_warnings._global_warnings.clear()
        module_warnings._global_deprecations.clear()


def _wait(pid: int, timeout: float) -> int | None:
    """The child's exit status, or None when it is still running after ``timeout`` seconds (then it is killed)."""
    pidfd = os.pidfd_open(pid)
    try:
        ready, _wlist, _xlist = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    if not ready:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return None
    _pid, status = os.waitpid(pid, 0)
    with contextlib.suppress(ProcessLookupError, PermissionError):  # whatever the module started and left behind
        os.killpg(pid, signal.SIGKILL)
    return os.waitstatus_to_exitcode(status)


def _judge(rc: int | None, out: str, err: str, timeout: float) -> dict[str, t.Any]:
    if rc is None:
        return {"status": "hang", "detail": f"no result within {timeout}s"}
    if rc == CRASH_RC or "Traceback (most recent call last)" in err:
        return {"status": "crash", "detail": err[-3000:]}
    try:
        result = json.loads(out)
    except ValueError:
        return {"status": "no-json", "detail": f"exit {rc}; stdout {out[:500]!r}; stderr {err[-1500:]!r}"}
    if not isinstance(result, dict):
        return {"status": "no-json", "detail": f"exit {rc}; stdout {out[:500]!r}"}
    if "Module failed" in str(result.get("msg", "")):
        return {"status": "crash", "detail": str(result.get("msg"))[:3000]}
    summary = {"failed": bool(result.get("failed")), "msg": str(result.get("msg", ""))[:300]}
    return {"status": "ok", "detail": "", "result": summary}


def main() -> None:
    request = json.load(sys.stdin)
    _shorten_waits()  # before the import: default arguments such as ``sleep=time.sleep`` bind the short one
    module = importlib.import_module(COLLECTION + request["module"])
    timeout = float(request["timeout"])
    _warm_up(module, request["cases"][0], timeout)
    deadline = time.monotonic() + float(request["deadline"])
    results: list[dict[str, t.Any]] = []
    with tempfile.TemporaryDirectory(prefix="hostile-io-") as io_dir:
        out_path = os.path.join(io_dir, "out")
        err_path = os.path.join(io_dir, "err")
        for case in request["cases"]:
            if time.monotonic() > deadline:
                results.append({"status": "not-run", "detail": "the module's deadline passed", "seconds": 0})
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            started = time.monotonic()
            pid = os.fork()
            if pid == 0:
                _child(module, case, out_path, err_path)
            rc = _wait(pid, timeout)
            with open(out_path, encoding="utf-8", errors="replace") as fh:
                out = fh.read()
            with open(err_path, encoding="utf-8", errors="replace") as fh:
                err = fh.read()
            verdict = _judge(rc, out, err, timeout)
            verdict["seconds"] = round(time.monotonic() - started, 3)
            results.append(verdict)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
