"""Figures the tests measure (corpus shares, shared settings): one line per file in tests/output/figures/, printed
at the end of `make test` (scripts/test-all.sh)."""

from __future__ import annotations

import os

FIGURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "output", "figures")


def write_figure(name: str, line: str) -> str:
    os.makedirs(FIGURES, exist_ok=True)
    with open(os.path.join(FIGURES, f"{name}.txt"), "w", encoding="utf-8") as handle:
        handle.write(line + "\n")
    return line


def corpus_figure(name: str, label: str, verdicts: dict[str, str], minimum: int = 90) -> str:
    """Write "<label> corpus: good/total ..." for verdicts valid / refused / silent-empty / anything else, and assert
    that no file gave a silent empty result and that at least ``minimum`` percent are valid or cleanly refused."""
    good = sum(v in ("valid", "refused") for v in verdicts.values())
    silent = sum(v == "silent-empty" for v in verdicts.values())
    refused = sum(v == "refused" for v in verdicts.values())
    line = write_figure(name, f"{label} corpus: {good}/{len(verdicts)} files valid or cleanly refused "
                              f"({100 * good // len(verdicts)}%; {refused} refused), {silent} silent empty")
    others = {f: v for f, v in verdicts.items() if v not in ("valid", "refused")}
    assert silent == 0, others
    assert good * 100 >= minimum * len(verdicts), others
    return line
