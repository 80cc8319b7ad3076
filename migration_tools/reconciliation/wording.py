"""How reports and the command line count things: "1 batch", "2 tampered records"."""

from __future__ import annotations

#: each discrepancy kind as a noun, singular and plural ("2 tampered record" reads as a typo)
KIND_NOUNS: dict[str, tuple[str, str]] = {
    "pending": ("record waiting for its batch", "records waiting for their batches"),
    "tampered_record": ("tampered record", "tampered records"),
    "missing_record": ("missing record", "missing records"),
    "tampered_batch": ("tampered batch", "tampered batches"),
    "manifest_mismatch": ("manifest mismatch", "manifest mismatches"),
    "chain_reset": ("chain reset", "chain resets"),
    "audit_log_altered": ("altered audit-log entry", "altered audit-log entries"),
    "audit_log_truncated": ("audit-log truncation", "audit-log truncations"),
    "title_state_altered": ("altered title state", "altered title states"),
    "not_mirrored": ("document not mirrored", "documents not mirrored"),
    "quarantined": ("quarantined document", "quarantined documents"),
    "changed_in_legacy": ("document changed in legacy", "documents changed in legacy"),
    "deleted_in_legacy": ("document deleted in legacy", "documents deleted in legacy"),
    "unknown_to_legacy": ("record unknown to legacy", "records unknown to legacy"),
}


def count(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` with its noun, singular for exactly one: count(1, "batch", "batches") == "1 batch"."""
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"


def kind_count(n: int, kind: str) -> str:
    """``n`` discrepancies of ``kind`` in words: kind_count(2, "tampered_record") == "2 tampered records"."""
    one, many = KIND_NOUNS.get(kind, (kind.replace("_", " "), kind.replace("_", " ")))
    return count(n, one, many)


def kinds_line(kinds: dict[str, int]) -> str:
    return ", ".join(kind_count(n, k) for k, n in kinds.items()) or "no discrepancy"
