"""Redis connections for sophia.migrate.redis_migrate (redis-py): how to reach a server, and what went wrong.

``Endpoint`` says how to reach one server (``label`` is the option name, source or target), ``connect`` gives
a redis-py client checked with PING, ``call`` runs one step and turns a client error into a
``RedisMigrateError`` whose message names the server and what was attempted; ``info`` and ``keyspace`` read
INFO. The operations build on these: ``_redis_replicate`` (replication and cutover), ``_redis_copy``
(DUMP/RESTORE copy), ``_redis_rdb`` (RDB backup) and ``_redis_verify`` (comparison).
"""

from __future__ import annotations

import dataclasses
import typing as t

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    HAS_REDIS = True
    REDIS_IMPORT_ERROR: str | None = None
except ImportError as _exc:  # pragma: no cover - exercised only without redis-py
    redis = None  # type: ignore[assignment]
    HAS_REDIS = False
    REDIS_IMPORT_ERROR = str(_exc)

MODES = ("replicate", "dump", "rdb", "verify")


class RedisMigrateError(Exception):
    """A migration step that failed; the message names the server and the step."""

    def __init__(self, msg: str, transient: bool = False, **facts: t.Any) -> None:
        super().__init__(msg)
        self.transient = transient  # the server could not be reached (may come back)
        self.facts = facts


@dataclasses.dataclass
class Endpoint:
    """How to reach one Redis server. ``label`` is the option name (source/target)."""

    label: str
    host: str = "127.0.0.1"
    port: int = 6379
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_ca_path: str | None = None
    tls_cert_path: str | None = None
    tls_key_path: str | None = None
    tls_verify: bool = True
    connect_timeout: float = 5.0

    @classmethod
    def from_params(cls, label: str, params: dict[str, t.Any] | None) -> Endpoint:
        fields = {f.name for f in dataclasses.fields(cls)} - {"label"}
        return cls(label=label, **{k: v for k, v in (params or {}).items() if k in fields and v is not None})

    @property
    def name(self) -> str:
        return f"{self.label} {self.host}:{self.port}"

    def public(self) -> dict[str, t.Any]:
        return {"host": self.host, "port": self.port, "username": self.username, "tls": self.tls}


# --------------------------------------------------------------------------- connections


def describe_error(ep: Endpoint, what: str, exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    low = text.lower()
    if (redis is not None and isinstance(exc, redis.AuthenticationError)) or any(
        s in low for s in ("wrongpass", "noauth", "invalid password", "invalid username-password")
    ):
        return (f"{ep.name}: authentication failed while {what} ({text}); "
                f"check options {ep.label}.username and {ep.label}.password")
    if redis is not None and isinstance(exc, redis.exceptions.NoPermissionError):
        return f"{ep.name}: the ACL user lacks a permission needed while {what} ({text}); check {ep.label}.username"
    if (redis is not None and isinstance(exc, (redis.ConnectionError, redis.TimeoutError))) or isinstance(
        exc, OSError
    ):
        return f"{ep.name}: cannot reach the server while {what} ({text}); check {ep.label}.host/{ep.label}.port/TLS"
    return f"{ep.name}: {what} failed: {text}"


def call(ep: Endpoint, what: str, fn: t.Callable[..., t.Any], *args: t.Any, **kwargs: t.Any) -> t.Any:
    """Run ``fn`` and turn any client error into a RedisMigrateError naming ``ep`` and ``what``."""
    try:
        return fn(*args, **kwargs)
    except RedisMigrateError:
        raise
    except Exception as exc:
        if (redis is not None and isinstance(exc, redis.RedisError)) or isinstance(exc, OSError):
            transient = isinstance(exc, OSError) or (
                redis is not None and isinstance(exc, (redis.ConnectionError, redis.TimeoutError))
                and not isinstance(exc, redis.AuthenticationError))
            raise RedisMigrateError(describe_error(ep, what, exc), transient=transient) from exc
        raise


def connect(ep: Endpoint, db: int = 0, socket_timeout: float = 30.0) -> t.Any:
    """A redis-py client for ``ep`` (bytes responses, no client-side retries), checked with PING."""
    kwargs: dict[str, t.Any] = {
        "host": ep.host, "port": ep.port, "db": db, "username": ep.username, "password": ep.password,
        "socket_connect_timeout": ep.connect_timeout, "socket_timeout": socket_timeout,
        "retry": Retry(NoBackoff(), 0), "decode_responses": False,
    }
    if ep.tls:
        kwargs.update(ssl=True, ssl_ca_certs=ep.tls_ca_path, ssl_certfile=ep.tls_cert_path,
                      ssl_keyfile=ep.tls_key_path, ssl_cert_reqs="required" if ep.tls_verify else "none",
                      ssl_check_hostname=ep.tls_verify)
    client = redis.Redis(**kwargs)
    call(ep, "connecting (PING)", client.ping)
    return client


def info(ep: Endpoint, client: t.Any, section: str) -> dict[str, t.Any]:
    return call(ep, f"reading INFO {section}", client.info, section)


def keyspace(ep: Endpoint, client: t.Any) -> dict[int, int]:
    """Keys per database from INFO keyspace: {0: 123, 3: 7}."""
    data = info(ep, client, "keyspace")
    out: dict[int, int] = {}
    for name, value in data.items():
        if str(name).startswith("db") and isinstance(value, dict):
            out[int(str(name)[2:])] = int(value.get("keys", 0))
    return out


def total_keys(ks: dict[int, int]) -> int:
    return sum(ks.values())


def keyspace_public(ks: dict[int, int]) -> dict[str, int]:
    return {f"db{db}": n for db, n in sorted(ks.items())}


def show_key(key: bytes | str) -> str:
    return key.decode("utf-8", "backslashreplace") if isinstance(key, bytes) else str(key)


def as_text(value: t.Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
