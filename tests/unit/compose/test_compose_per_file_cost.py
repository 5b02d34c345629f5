"""What compose_to_k8s pays per Compose file, without changing what it produces (issue 30: the module with its
default validate=true must translate at least 100 files/s).

- Compose files are parsed with libyaml's parser (PyYAML's C extension): YAML parsing was a quarter of the time
  per file once validation was fast, and libyaml parses the corpus about 8x faster. The constructor stays
  PyYAML's safe one, so the documents are the same, and the file's own errors keep their meaning.
- Secret-looking names are checked against the secret_patterns with one regular expression per list of patterns,
  compiled once, instead of two matches per pattern (a fifth of the time per file).
"""

from __future__ import annotations

import glob
import os
import re

import pytest
import yaml

from ansible_collections.sophia.migrate.plugins.module_utils import _compose_load, _compose_translate, _compose_values

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "compose"))
FILES = sorted(glob.glob(os.path.join(FIXTURES, "**", "*.y*ml"), recursive=True))


@pytest.fixture
def parsers(monkeypatch):
    """The loader classes used to read Compose files (libyaml's, counted)."""
    used: list[str] = []

    class Counted(yaml.CSafeLoader):
        def __init__(self, stream):
            used.append("libyaml")
            super().__init__(stream)

    monkeypatch.setattr(yaml, "CSafeLoader", Counted)
    return used


def test_compose_files_are_parsed_by_libyaml(parsers):
    corpus = sorted(glob.glob(os.path.join(FIXTURES, "corpus", "docker-awesome-compose__*.yaml")))
    assert len(corpus) >= 10
    for path in corpus:
        _compose_load.load_project([path])
    assert parsers == ["libyaml"] * len(corpus)


@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.relpath(p, FIXTURES))
def test_libyaml_reads_every_fixture_as_the_python_parser_does(path):
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        expected = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        with pytest.raises(yaml.YAMLError):
            yaml.load(text, Loader=yaml.CSafeLoader)
        return
    assert yaml.load(text, Loader=yaml.CSafeLoader) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("services: {web: {image: a, command: " + "[" * 5000 + "]" * 5000 + "}}\n", "invalid YAML: nested too deeply"),
    ("services:\n  web:\n    image: a\n   ports: [1]\n", "invalid YAML: "),
    ("services: {web: {image: a}}\nservices: {db: {image: b}}\n", None),
])
def test_the_files_own_errors_keep_their_messages(tmp_path, text, message):
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    if message is None:  # a repeated key: the later one wins, as with the Python parser
        assert set(_compose_load.load_project([str(path)])["services"]) == {"db"}
        return
    with pytest.raises(_compose_values.ComposeError) as err:
        _compose_load.load_project([str(path)])
    assert str(err.value).startswith(f"{path}: {message}")


def _reference_is_secret_name(name: str, patterns, explicit) -> bool:
    """The rule as documented: the name, or the name with - and . read as _, matches a pattern (case-insensitive,
    * any run of characters), or is listed explicitly."""
    def glob_match(value: str, pattern: str) -> bool:
        regex = "^" + re.escape(pattern.upper()).replace(r"\*", ".*") + "$"
        return re.match(regex, value.upper()) is not None

    words = re.sub(r"[-.]", "_", name)
    return name in set(explicit) or any(glob_match(name, p) or glob_match(words, p) for p in patterns)


def _corpus_names() -> set[str]:
    names = {"DB_PASS", "db-pass", "a.secret.key", "PASSENGER_COUNT", "TOKENIZERS_PARALLELISM", "", "x\n", "PWD\n",
             "Api-Key", "my.token", "KEYCLOAK_URL", "pass", "_"}
    for path in sorted(glob.glob(os.path.join(FIXTURES, "corpus", "*.y*ml"))):
        with open(path, encoding="utf-8") as handle:
            doc = yaml.safe_load(handle) or {}
        for svc in (doc.get("services") or {}).values():
            env = (svc or {}).get("environment") if isinstance(svc, dict) else None
            if isinstance(env, dict):
                names.update(str(k) for k in env)
            elif isinstance(env, list):
                names.update(str(item).split("=", 1)[0] for item in env)
    return names


@pytest.mark.parametrize("patterns", [
    _compose_values.DEFAULT_SECRET_PATTERNS, (), ("*",), ("DB_*", "*_TOKEN", "EXACT"), ("a.b", "x*y*z", "(", "[", "\\"),
], ids=["defaults", "none", "all", "custom", "regex-characters"])
def test_secret_names_are_judged_as_pattern_by_pattern(patterns):
    names = _corpus_names()
    assert len(names) > 80
    for explicit in ((), ("LOG_LEVEL",)):
        for name in names:
            expected = _reference_is_secret_name(name, patterns, explicit)
            assert _compose_values.is_secret_name(name, list(patterns), explicit) is expected, (name, patterns)


def test_secret_patterns_are_compiled_once_per_list(capsys):
    _compose_values._globs_regex.cache_clear()
    for path in sorted(glob.glob(os.path.join(FIXTURES, "corpus", "docker-awesome-compose__*.yaml"))):
        _compose_translate.translate(_compose_load.load_project([path]))
    info = _compose_values._globs_regex.cache_info()
    assert info.misses == 1 and info.hits > 100
