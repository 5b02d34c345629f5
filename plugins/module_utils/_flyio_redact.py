"""Secret redaction for the Fly.io audit: what is taken from repositories and URLs, without credentials.

A scanned line is kept as evidence (file:line, the matching text), but repositories hold credentials: every
text taken from a scanned file goes through ``redact_secrets()`` before it is returned or written, and
``redact_value()`` does the same for every string of a result. What is removed is the secret itself; the key
name, scheme, user, host and app name stay, so the finding stays useful. ``url_secrets()`` lists what an API
URL carries, for the modules to mask in any output.
"""

from __future__ import annotations

import re
import typing as t

REDACTED = "REDACTED"

_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s/?#@:'\"`<>]*):([^\s@'\"`<>]+)@")
_SECRET_PARAM = re.compile(
    r"(?i)([?&;][a-z0-9_.\[\]-]*?(?:token|key|secret|passw(?:or)?d|pass|pwd|sig|signature|auth|credential|"
    r"session)[a-z0-9_.\[\]-]*=)([^&#\s'\"`<>]+)"
)
_FLYV1 = re.compile(r"\b(FlyV1)\s+[A-Za-z0-9_+/=,.-]+")
_FLY_MACAROON = re.compile(r"\b(fm[12][ar]?_)[A-Za-z0-9_+/=,.-]+")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/=-]{8,})")
_TOKEN_SHAPES = (
    re.compile(r"\b(gh[pousr]_)[A-Za-z0-9]{20,}"),  # GitHub tokens
    re.compile(r"\b(github_pat_)[A-Za-z0-9_]{20,}"),  # GitHub fine-grained tokens
    re.compile(r"\b(glpat-)[A-Za-z0-9_-]{20,}"),  # GitLab
    re.compile(r"\b(A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA))[A-Z0-9]{12,}\b"),  # AWS access key ids
    re.compile(r"\b(eyJ)[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*)?"),  # JWTs
    re.compile(r"\b(xox[abposr]-)[A-Za-z0-9-]{10,}"),  # Slack
    re.compile(r"\b((?:sk|rk)_(?:live|test)_)[A-Za-z0-9]{10,}"),  # Stripe secret keys
    re.compile(r"\b(sk-(?:ant-|proj-)?)[A-Za-z0-9_-]{20,}"),  # OpenAI / Anthropic
    re.compile(r"\b(AIza)[0-9A-Za-z_-]{30,}"),  # Google API keys
    re.compile(r"\b(npm_)[A-Za-z0-9]{30,}"),  # npm
)
_SECRET_FLAG = re.compile(
    r"(?i)(?<![\w-])(--?[a-z0-9-]*(?:token|password|passwd|secret|api-?key|private-key|access-key)[a-z0-9-]*"
    r"(?:=|[ \t]+))(?=[^\s-])([^\s'\"`]+)"
)
_ASSIGN = re.compile(r"""(?<![\w.$])(["']?)([A-Za-z_][\w.-]*)\1([ \t]*[:=][ \t]*)""")
_LONG_TOKEN = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{32,}={0,2}(?![A-Za-z0-9+/=])")
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "tokens",
        "apikey",
        "privatekey",
        "accesskey",
        "secretkey",
        "credential",
        "credentials",
        "authorization",
    }
)
# Parts of a word that name a secret wherever they are (PGPASSWORD, MYSECRET, githubtoken).
_SECRET_PARTS = ("password", "passwd", "passphrase", "secret", "token", "apikey", "credential")
# A key whose last word says what kind of value it holds is not a secret value (SECRET_NAME, TOKEN_URL, ...).
_NOT_SECRET_LAST = frozenset(
    {
        "url",
        "uri",
        "host",
        "hostname",
        "endpoint",
        "port",
        "file",
        "path",
        "dir",
        "name",
        "names",
        "id",
        "ids",
        "type",
        "env",
        "var",
        "ref",
        "header",
        "ttl",
        "expiry",
        "expires",
        "length",
        "count",
        "size",
        "mode",
        "version",
    }
)
_REFERENCE_VALUE = re.compile(
    r"""^(?:\$\{\{[^{}]*\}\}|\$\{?[A-Za-z_]\w*\}?|\{\{[^{}]*\}\}|<[^<>]*>|%\([\w.-]+\)s|\*+|REDACTED|"""
    r"""[\[\]{}|>~-]*|\|-|>-|null|none|true|false)$""",
    re.I,
)
_URL_VALUE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


_SPACED_END = re.compile(r"[ \t]+#|$")
_SHELL_END = re.compile(r"[\s;&|)'\"`]|$")
# A value already reduced by the rules above ("Bearer REDACTED", "ghp_REDACTED") keeps what is left of it.
_ALREADY_REDACTED = re.compile(r"^(?:[A-Za-z][\w-]*\s+)?[\w-]*" + REDACTED + r"$")
_USER_FLAG = re.compile(r"(?<!\S)(-u|--user)([ \t]+|=)([^\s:'\"`]+):([^\s'\"`]+)")


def _key_words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key)
    return [w for w in re.split(r"[\s_.\-]+", spaced.lower()) if w]


def secret_key(key: str) -> bool:
    """Whether an assignment's key names a secret (PASSWORD, DB_PASS, apiKey, AWS_SECRET_ACCESS_KEY, ...)."""
    words = _key_words(key)
    if not words or words[-1] in _NOT_SECRET_LAST:
        return False
    return any(w in _SECRET_WORDS or any(part in w for part in _SECRET_PARTS) for w in words) or (
        "key" in words and len(words) > 1
    )


def _value_span(text: str, start: int, spaced: bool) -> tuple[int, int]:
    """Start and end of the value that begins at ``start`` (inside the quotes when quoted)."""
    if start >= len(text):
        return start, start
    quote = text[start]
    if quote in "\"'`":
        i = start + 1
        while i < len(text) and text[i] != quote:
            i += 2 if text[i] == "\\" and quote == '"' else 1
        return start + 1, min(i, len(text))
    if spaced:  # YAML / TOML / ini: the rest of the line, up to a comment
        m = _SPACED_END.search(text, start)
        end = m.start() if m else len(text)
        while end > start and text[end - 1] in " \t":
            end -= 1
        # a quote that closes around the whole assignment ('Authorization: Basic xyz') is not part of the value
        while end > start and text[end - 1] in "'\"`" and text[start:end].count(text[end - 1]) % 2 == 1:
            end -= 1
        return start, end
    m = _SHELL_END.search(text, start)
    return start, m.start() if m else len(text)


def _redact_assignments(text: str) -> str:
    out: list[str] = []
    pos = 0
    search_from = 0
    while True:
        m = _ASSIGN.search(text, search_from)
        if not m:
            break
        search_from = m.end()
        if not secret_key(m.group(2)):
            continue
        sep = m.group(3)
        start, end = _value_span(text, m.end(), spaced=":" in sep or sep != sep.strip())
        value = text[start:end].strip()
        if not value or any(p.match(value) for p in (_REFERENCE_VALUE, _URL_VALUE, _ALREADY_REDACTED)):
            continue
        out.append(text[pos:start])
        out.append(REDACTED)
        pos = search_from = end
    out.append(text[pos:])
    return "".join(out)


def _redact_flag(m: re.Match[str]) -> str:
    value = m.group(2).strip("\"'")
    return m.group(0) if _REFERENCE_VALUE.match(value) else m.group(1) + REDACTED


def _redact_long_token(m: re.Match[str]) -> str:
    token = m.group(0)
    classes = (re.search(r"[a-z]", token), re.search(r"[A-Z]", token), re.search(r"[0-9]", token))
    return REDACTED if all(classes) else token


def redact_secrets(text: str) -> str:
    """``text`` without the credentials it may hold; idempotent (redacting twice changes nothing more).

    Removed: the password of ``scheme://user:password@host``, query parameters named like token/key/secret/
    password/sig/auth, ``FlyV1 ...`` and ``fm1_``/``fm2_`` macaroons, Bearer/Basic credentials, common token shapes
    (GitHub, GitLab, AWS access key ids, JWTs, Slack, Stripe, OpenAI, Google, npm), the value of command-line flags
    and of ``KEY=value`` / ``key: value`` / ``"key": "value"`` assignments whose key names a secret, and long
    mixed-case base64-like strings. Kept: key names, schemes, users, hosts, app names, variable references
    (``${{ secrets.X }}``, ``$X``, ``{{ x }}``) and URLs that are assignment values (their credentials removed).
    """
    if not isinstance(text, str) or not text:
        return text
    text = shown_text(text)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{m.group(2)}:{REDACTED}@", text)
    text = _SECRET_PARAM.sub(lambda m: m.group(1) + REDACTED, text)
    text = _FLYV1.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _FLY_MACAROON.sub(lambda m: m.group(1) + REDACTED, text)
    text = _AUTH_SCHEME.sub(
        lambda m: m.group(0) if not re.search(r"[0-9._~+/=-]", m.group(3)) else m.group(1) + m.group(2) + REDACTED,
        text,
    )
    for shape in _TOKEN_SHAPES:
        text = shape.sub(lambda m: m.group(1) + REDACTED, text)
    text = _USER_FLAG.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}:{REDACTED}", text)
    text = _SECRET_FLAG.sub(_redact_flag, text)
    text = _redact_assignments(text)
    return _LONG_TOKEN.sub(_redact_long_token, text)


def redact_value(value: t.Any) -> t.Any:
    """Copy of ``value`` with every string (not dict keys) passed through redact_secrets."""
    if isinstance(value, str):
        return redact_secrets(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value


def url_secrets(url: t.Any) -> set[str]:
    """The credentials a URL carries (userinfo password, secret-named query values), to be masked in any output."""
    if not isinstance(url, str):
        return set()
    found = {m.group(3) for m in _URL_USERINFO.finditer(url)} | {m.group(2) for m in _SECRET_PARAM.finditer(url)}
    return {value for value in found if value and value != REDACTED}


def shown_text(text: str) -> str:
    """``text`` as valid UTF-8: bytes of a non-UTF-8 file name (surrogate escapes) become U+FFFD."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that does not stand for a byte
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")
