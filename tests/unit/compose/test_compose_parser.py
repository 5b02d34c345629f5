"""Compose files are parsed with libyaml's parser (PyYAML's C extension) and give the same documents.

YAML parsing was a quarter of compose_to_k8s's time per file once validation was fast (issue 30: the module with
validate=true must translate at least 100 files/s); libyaml parses the corpus about 8x faster. The constructor
stays PyYAML's safe one, so the documents are the same, and the file's own errors keep their meaning.
"""

from __future__ import annotations

import glob
import os

import pytest
import yaml

from ansible_collections.sophia.migrate.plugins.module_utils import _compose

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
        _compose.load_project([path])
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
        assert set(_compose.load_project([str(path)])["services"]) == {"db"}
        return
    with pytest.raises(_compose.ComposeError) as err:
        _compose.load_project([str(path)])
    assert str(err.value).startswith(f"{path}: {message}")
