"""Proofs: a record's bundle for auditors, and verdicts on bundles and receipts, always pinned to
the registry's own published trust root (never to an address found in what is verified)."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import bindparam, exists, select

from hybrid_store import title_abstract
from hybrid_store.chain.client import RegistryChain
from hybrid_store.core import bundle as bundles
from hybrid_store.core.commitment import FIELDS
from hybrid_store.core.trust import TrustRoot
from hybrid_store.db.engine import Database
from hybrid_store.db.models import AnchorBatch, BatchRecord, BatchState, Commitment, Instrument, MirrorFlag, table
from hybrid_store.errors import NotFound
from hybrid_store.proofs import correction_bundles, export_bundle
from hybrid_store.settings import Settings
from hybrid_store.verifier import abstracts
from hybrid_store.verifier.receipts import verify_receipt
from hybrid_store.verifier.trust import load as load_trust
from hybrid_store.verifier.verdicts import Verdict, verify_document


class Proofs:
    def __init__(self, settings: Settings, db: Database, read_chain: Callable[[], RegistryChain]):
        self.settings = settings
        self.db = db
        self.read_chain = read_chain  # the node anchors are checked against (an auditor's convenience)
        self._bundle_cache = LRUCache(settings.service.proof_cache_size)
        self._trust: tuple[tuple[int, int], TrustRoot] | None = None

    def hidden(self, redact: Iterable[str], *, full: bool) -> frozenset[str]:
        """The fields a bundle gives as hashes only: those asked for, and, for a reader without the
        proof permission (``full`` False), every field not in ``service.public_fields``. The proof
        itself always stays complete."""
        hidden = set(redact)
        if not full:
            hidden |= set(FIELDS) - set(self.settings.service.public_fields)
        return frozenset(hidden)

    def bundle(self, number: str, redact: Iterable[str] = (), *, full: bool) -> bundles.ProofBundle:
        with self.db.read() as s:
            return export_bundle(s, number, redact=sorted(self.hidden(redact, full=full)))

    def bundle_json(self, number: str, redact: Iterable[str] = (), *, full: bool) -> tuple[bytes, bool]:
        """The bundle as JSON bytes, and whether it is complete. Complete bundles never change while
        their record stays in the same confirmed batch, so they are kept in a per-process cache keyed
        by that placement, which one query checks on every request (a re-anchored record gets a new
        placement and a new bundle)."""
        hidden = self.hidden(redact, full=full)
        with self.db.read() as s:
            placement = s.connection().execute(_PLACEMENT_OF_NUMBER, {"number": number}).first()
            key = (number, hidden, tuple(placement) if placement else None)
            cached = self._bundle_cache.get(key)
            if cached is not None:
                return cached, True
            bundle = export_bundle(s, number, redact=sorted(hidden))
        data = json.dumps(bundle.to_json(), ensure_ascii=False, separators=(",", ":")).encode()
        # a corrected record's bundle grows as its corrections are anchored, which the key does not see
        if bundle.is_anchored and placement is not None and placement.state == BatchState.CONFIRMED \
                and not placement.corrected:  # fmt: skip
            self._bundle_cache.put(key, data)
        return data, bundle.is_anchored

    def verify(self, document: Any, *, on_chain: bool = True) -> Verdict | abstracts.AbstractVerdict:
        """The verdict, at the depth this registry settles its batches at, with what the registry
        holds as evidence (the newer version, the corrections, a parcel's newest head): the verifier
        checks it on the chain. A title abstract gets an abstract's verdict."""
        if abstracts.is_abstract(document):
            return abstracts.verify_document(document, chain=self.read_chain() if on_chain else None,
                                             trust=self.trust_root(), newest_of=self.newest_head,
                                             depth=self.depth)  # fmt: skip
        return verify_document(document, chain=self.read_chain() if on_chain else None, trust=self.trust_root(),
                               successor_of=self.successor_of, corrections_of=self.corrections_of,
                               depth=self.depth)  # fmt: skip

    def abstract_json(self, parcel_key: str, redact: Iterable[str] = (), *, full: bool) -> bytes:
        """A parcel's title abstract as of the newest confirmed title state (docs/title-abstract.md)."""
        with self.db.read() as s:
            made = title_abstract.build(s, parcel_key, redact=sorted(self.hidden(redact, full=full)))
        return json.dumps(made.to_json(), ensure_ascii=False, separators=(",", ":")).encode()

    def newest_head(self, parcel_key: str) -> Any:
        """The parcel's head in the newest confirmed title state, as evidence only (the verifier
        checks it on the chain; a damaged store gives none)."""
        try:
            with self.db.read() as s:
                return title_abstract.head_document(s, parcel_key).to_json()
        except (NotFound, ValueError):
            return None

    @property
    def depth(self) -> int:
        return max(1, self.settings.chain.confirmations)

    def corrections_of(self, commitment: bytes) -> list[Any]:
        """The anchored bundles of the records that correct the one committed as ``commitment``
        (a bundle made before they were recorded carries none), disclosing their correction link
        only. Evidence, never believed unchecked."""
        with self.db.read() as s:
            iid = s.scalar(select(Commitment.instrument_id).where(Commitment.commitment == commitment))
            if iid is None:
                return []
            return [b.to_json() for b in correction_bundles(s, iid)]

    def successor_of(self, commitment: bytes) -> Any:
        """The bundle of the version that superseded the record committed as ``commitment`` (a bundle
        made before the edit carries none), as evidence only: every field but the history link
        redacted. Our database is not trusted for it: the verifier checks it on the chain."""
        with self.db.read() as s:
            number = s.scalar(
                select(Instrument.instrument_number)
                .join(MirrorFlag, MirrorFlag.successor_id == Instrument.id)
                .join(Commitment, Commitment.instrument_id == MirrorFlag.instrument_id)
                .where(Commitment.commitment == commitment)
            )
            if number is None:
                return None
            return export_bundle(s, number, redact=sorted(set(FIELDS) - {"prev"}), with_successor=False).to_json()

    def verify_receipt(self, receipt: Any, bundle: Any) -> Verdict:
        return verify_receipt(receipt, bundle, chain=self.read_chain(), trust=self.trust_root(), depth=self.depth)

    def trust_root(self) -> TrustRoot | None:
        """The newest trust root this registry published (LANDREG_HOME/trust/root.json), re-read
        when the file changes; None before the first `landreg trust export`."""
        path = self.settings.trust_dir / "root.json"
        try:
            stat = path.stat()
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._trust
        if cached is not None and cached[0] == stamp:
            return cached[1]
        root = load_trust(path)
        self._trust = (stamp, root)
        return root


_B = table(AnchorBatch)
_BR = table(BatchRecord)
_I = table(Instrument)
_F = table(MirrorFlag)
_CORRECTING = _I.alias("correcting")
# (the flag's revocation is part of the key: a bundle gains its successor once its leaf is revoked)
_PLACEMENT_OF_NUMBER = (
    select(
        _B.c.id,
        _B.c.state,
        _B.c.block_number,
        _B.c.tx_hash,
        _F.c.revoked_block,
        exists().where(_CORRECTING.c.corrects_id == _I.c.id).label("corrected"),
    )  # fmt: skip
    .select_from(
        _I.join(_BR, _BR.c.instrument_id == _I.c.id)
        .join(_B, _B.c.id == _BR.c.batch_id)
        .outerjoin(_F, _F.c.instrument_id == _I.c.id)
    )  # fmt: skip
    .where(_I.c.instrument_number == bindparam("number"), _B.c.state != BatchState.FAILED, _B.c.superseded_at.is_(None))
    .order_by(_B.c.id.desc())
    .limit(1)
)


class LRUCache:
    """A small thread-safe least-recently-used map (size 0 disables it)."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[Any, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: bytes) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
