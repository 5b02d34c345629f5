"""The zero-data-loss criterion on ledgers shaped as data_migration writes them (steps copied from a staging run)."""

from __future__ import annotations

from ansible_collections.sophia.migrate.plugins.module_utils._criteria import data_loss

PREFIXES = ["data/", "redis/", "qdrant/", "volume/"]


def entry(step, status="done", **data):
    return {"step": step, "status": status, "data": data}


def migrated():
    return [
        entry("redis/backup", sha256="1d18", path="/var/backups/sophia/redis.rdb"),
        entry("redis/replicate", lag_bytes=0, source_offset=14, target_offset=14),
        entry("redis/promote", method="pause", source_offset_at_promotion=14, target_offset_at_promotion=14),
        entry("redis/cutover", verified=True, write_pause_ms=1.5),
        entry("qdrant/sophia/backup", checksum_verified=True, sha256="5c3b"),
        entry("qdrant/sophia/copy", equal=True, pending_delta=0),
        entry("qdrant/restore", verified=True, freeze_seconds=18.5),
        entry("volume/research-cache/backup", sha256="1550"),
        entry("volume/research-cache/copy", source="/a", target="/b"),
        entry("volume/research-cache/cutover", verified=True, delta_files=0),
        entry("volume/research-cache/verify", verified=True, pending_delta=0),
    ]


def test_a_complete_verified_migration_passes():
    # backups, the replication and the promotion record no verification of their own: they only have to be done
    result = data_loss({"entries": migrated()}, PREFIXES)
    assert result["passed"] is True, result
    assert result["measured"] == "3/3 stores verified, 11 steps"


def test_a_failed_verification_fails_naming_the_step():
    entries = [*migrated(), entry("qdrant/restore", verified=False)]
    result = data_loss({"entries": entries}, PREFIXES)
    assert result["passed"] is False and "qdrant/restore (done, verified=False)" in result["evidence"]


def test_a_copy_that_differs_or_a_lost_write_fails():
    for bad in (entry("qdrant/sophia/copy", equal=False), entry("data/x/cutover", lost_writes=2)):
        result = data_loss({"entries": [*migrated(), bad]}, PREFIXES)
        assert result["passed"] is False and bad["step"] in result["evidence"], result


def test_a_store_without_any_verified_step_fails():
    entries = [e for e in migrated() if not e["step"].startswith("redis/cutover")]
    result = data_loss({"entries": entries}, PREFIXES)
    assert result["passed"] is False and "redis: no verified step" in result["evidence"], result


def test_a_step_not_done_fails_and_an_empty_ledger_is_not_measurable():
    entries = [*migrated(), entry("volume/research-cache/cutover", status="started")]
    result = data_loss({"entries": entries}, PREFIXES)
    assert result["passed"] is False and "volume/research-cache/cutover (started" in result["evidence"]
    empty = data_loss({"entries": [entry("traffic/www-root/100")]}, PREFIXES)
    assert empty["passed"] is None and empty["measured"] is None
