"""Commitments: frozen test vectors, an independent implementation from the spec, the shell recipe
from docs/commitment-spec.md, and the hiding / redactable / history-linked properties."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid_store.core import commitment
from hybrid_store.core.hashing import keccak256
from hybrid_store.core.records import Reference, build_record

HERE = Path(__file__).parent
VECTORS_V1 = sorted((HERE / "vectors" / "commitment").glob("*.json"))
VECTORS_V2 = sorted((HERE / "vectors" / "commitment-v2").glob("*.json"))
VECTORS = VECTORS_V1 + VECTORS_V2
assert VECTORS_V1 and VECTORS_V2, "commitment vectors missing"


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def record_from_vector(v: dict):
    f = v["fields"]
    return build_record(
        instrument_number=f["instrument_number"], doc_type=f["doc_type"], recorded_at=f["recorded_at"],
        book=f["book"], page=f["page"], grantors=f["grantors"], grantees=f["grantees"],
        consideration_cents=f["consideration"], legal_description=f["legal_description"],
        document_digest=f["document_digest"], parcels=f["parcels"], corrects=f["corrects"],
        prev={k: link for k, link in f["prev"]}, document_date=f.get("document_date"), page_count=f.get("page_count"),
        grantee_mailing_address=f.get("grantee_mailing_address"), preparer=f.get("preparer"),
        references=[Reference(*r) for r in f.get("references", ())], supersedes=f.get("supersedes"),
    )  # fmt: skip


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector_is_reproduced(path):
    v = load(path)
    seed, scheme = bytes.fromhex(v["seed"]), v["scheme"]
    record = record_from_vector(v)
    assert commitment.field_values(record, scheme) == v["fields"]
    assert set(v["fields"]) == set(commitment.fields_of(scheme))
    for name in commitment.fields_of(scheme):
        assert "0x" + commitment.field_salt(seed, name, scheme).hex() == v["expected"]["salts"][name]
    assert "0x" + commitment.commit(record, seed, scheme).hex() == v["expected"]["commitment"]


def test_v1_vectors_are_unchanged_and_v2_vectors_reproduce_byte_for_byte():
    """The vector files are what make_vectors.py makes of each scheme today, to the byte: v1's were
    frozen when v1 was introduced, so this also says introducing v2 moved none of them."""
    from tests.vectors.make_vectors import vectors

    for version, folder in (("v1", "commitment"), ("v2", "commitment-v2")):
        made = vectors(version)
        on_disk = {p for p in (HERE / "vectors").glob("*/*.json") if p.parent.name in (folder, folder.replace(
            "commitment", "bundle"))}  # fmt: skip
        assert set(made) == on_disk, version
        for path, content in made.items():
            assert path.read_text(encoding="utf-8") == json.dumps(content, indent=2, ensure_ascii=False) + "\n", path


def spec_commitment(seed: bytes, fields: dict, scheme: str = "landreg-commitment/v1") -> bytes:
    """landreg-commitment/v1 and /v2 written again from docs/commitment-spec.md, sharing no code."""
    tag = scheme.encode()
    hashes = []
    for name, value in fields.items():
        salt = hmac.new(seed, tag + b"/salt\x00" + name.encode(), hashlib.sha256).digest()
        preimage = tag + b"/field\x00" + name.encode() + b"\x00" + salt + rfc8785.dumps(value)
        hashes.append(hashlib.sha256(preimage).digest())
    return hashlib.sha256(tag + b"/commitment\x00" + b"".join(sorted(hashes))).digest()


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector_matches_an_independent_implementation(path):
    v = load(path)
    assert v["scheme"] in ("landreg-commitment/v1", "landreg-commitment/v2")
    assert len(v["fields"]) == (13 if v["scheme"].endswith("v1") else 19)
    value = spec_commitment(bytes.fromhex(v["seed"]), v["fields"], v["scheme"])
    assert "0x" + value.hex() == v["expected"]["commitment"]
    leaf = keccak256(keccak256(value))  # standard-v1 leaf of abi.encode(bytes32)
    assert "0x" + leaf.hex() == v["expected"]["leaf"]


@pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("xxd")), reason="needs openssl and xxd")
@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector_matches_the_shell_recipe_of_the_spec(path):
    v = load(path)
    scheme = v["scheme"]
    extra = ("references", "page_count", "supersedes") if scheme.endswith("v2") else ()
    for name in ("doc_type", "grantors", "consideration", "prev", *extra):
        salt = subprocess.run(
            ["bash", "-c", f"printf '{scheme}/salt\\0{name}' | "
                           f"openssl dgst -sha256 -mac HMAC -macopt hexkey:{v['seed']} | awk '{{print $NF}}'"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        assert "0x" + salt == v["expected"]["salts"][name]
        jcs = rfc8785.dumps(v["fields"][name])
        digest = subprocess.run(
            ["bash", "-c", f"{{ printf '{scheme}/field\\0{name}\\0'; printf '%s' {salt} | xxd -r -p; cat; }}"
                           " | sha256sum | cut -c1-64"],
            input=jcs, capture_output=True, check=True,
        ).stdout.decode().strip()  # fmt: skip
        assert "0x" + digest == v["expected"]["fieldHashes"][name]


# --- properties --------------------------------------------------------------------------------------
names = (
    st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ ÉÖ'.-"), min_size=1, max_size=30).map(str.strip).filter(bool)
)
keys = st.sampled_from(["0223_100.01_5", "0223_100.01_6", "0219_2150_1_C0012", "0201_3_4"])


@st.composite
def records(draw):
    parcels = draw(st.lists(keys, min_size=1, max_size=3, unique=True))
    link = st.none() | st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
    return build_record(
        instrument_number=draw(st.from_regex(r"20[0-9]{2}-[0-9]{7}", fullmatch=True)),
        doc_type=draw(st.sampled_from(["DEED", "MORTGAGE", "LIEN", "EASEMENT"])),
        recorded_at="2025-01-02T03:04:05Z", book=str(draw(st.integers(1, 99999))), page=str(draw(st.integers(1, 999))),
        grantors=draw(st.lists(names, min_size=1, max_size=3)), grantees=draw(st.lists(names, min_size=1, max_size=3)),
        consideration_cents=draw(st.none() | st.integers(0, 10**13)), legal_description=draw(names),
        document_digest="ab" * 32, parcels=parcels, corrects=None, prev={k: draw(link) for k in parcels},
    )  # fmt: skip


seeds = st.binary(min_size=32, max_size=32)


@given(records(), seeds)
def test_bulk_hashing_equals_the_spec_one_field_at_a_time(record, seed):
    # the bulk path builds HMAC from its padded-key states; the spec functions use hmac.digest
    values = commitment.field_values(record)
    for name in commitment.FIELDS_V1:
        assert commitment.field_salt(seed, name) == hmac.digest(
            seed, b"landreg-commitment/v1/salt\x00" + name.encode(), "sha256"
        )
    spec = [commitment.field_hash(n, commitment.field_salt(seed, n), values[n]) for n in commitment.FIELDS_V1]
    prepared = commitment.prepare(record, seed)
    assert list(prepared.field_hashes) == spec[:-1] and commitment.FIELDS_V1[-1] == "prev"
    assert prepared.prev_salt == commitment.field_salt(seed, "prev")
    assert commitment.commit(record, seed) == commitment.combine(spec)


@given(records(), seeds)
def test_every_redaction_keeps_the_commitment(record, seed):
    full = commitment.commit(record, seed)
    for name in commitment.FIELDS_V1:
        assert commitment.disclose(record, seed, redact=[name]).commitment() == full
    assert commitment.disclose(record, seed, redact=commitment.FIELDS_V1).commitment() == full
    assert commitment.disclose(record, seed).commitment() == full


@given(records(), seeds, seeds)
def test_hiding_the_same_record_under_two_seeds_shares_nothing(record, seed_a, seed_b):
    if seed_a == seed_b:
        return
    a = commitment.disclose(record, seed_a, redact=commitment.FIELDS_V1).redacted
    b = commitment.disclose(record, seed_b, redact=commitment.FIELDS_V1).redacted
    assert commitment.commit(record, seed_a) != commitment.commit(record, seed_b)
    assert not set(a.values()) & set(b.values())  # not even a price's or a name's field hash repeats


@settings(max_examples=50)
@given(records(), seeds, st.integers(0, 10**13))
def test_a_low_entropy_field_cannot_be_guessed_from_its_hash(record, seed, guess):
    # The hash of a redacted price matches no unsalted guess, and no guess under another seed.
    redacted = commitment.disclose(record, seed, redact=["consideration"]).redacted["consideration"]
    other_seed = bytes(32) if seed != bytes(32) else b"\x01" * 32
    assert redacted != commitment.field_hash("consideration", commitment.field_salt(other_seed, "consideration"), guess)
    assert redacted != hashlib.sha256(str(guess).encode()).digest()


@given(records(), seeds, st.binary(min_size=32, max_size=32))
def test_history_link_is_committed(record, seed, other):
    key = record.parcels[0]
    relinked = build_record(
        **{**{f: getattr(record, f) for f in record.__slots__ if f not in ("prev", "consideration_cents")},
           "consideration_cents": record.consideration_cents,
           "prev": {**dict(record.prev), key: "0x" + other.hex()}},
    )  # fmt: skip
    if relinked.prev == record.prev:
        return
    assert commitment.commit(relinked, seed) != commitment.commit(record, seed)


@given(records(), seeds)
def test_any_single_field_change_changes_the_commitment(record, seed):
    full = commitment.commit(record, seed)
    d = commitment.disclose(record, seed)
    for name, (salt, value) in d.opened.items():
        changed = dict(d.opened)
        changed[name] = (salt, ["x"] if value != ["x"] else ["y"])
        assert commitment.Disclosure(opened=changed).commitment() != full, name


def test_disclosure_must_cover_every_field_exactly_once():
    v = load(VECTORS[0])
    d = commitment.disclose(record_from_vector(v), bytes.fromhex(v["seed"]))
    opened = dict(d.opened)
    opened.pop("prev")
    with pytest.raises(ValueError, match="'prev' is neither disclosed nor redacted"):
        commitment.Disclosure(opened=opened).commitment()
    with pytest.raises(ValueError, match="both disclosed and redacted"):
        commitment.Disclosure(opened=d.opened, redacted={"book": b"\x00" * 32}).commitment()
    with pytest.raises(ValueError, match="not a field"):
        commitment.disclose(record_from_vector(v), bytes.fromhex(v["seed"]), redact=["owner"])


def test_seed_and_salt_lengths_are_enforced():
    with pytest.raises(ValueError, match="32 bytes"):
        commitment.field_salt(b"short", "book")
    with pytest.raises(ValueError, match="32 bytes"):
        commitment.field_hash("book", b"short", "1")


@given(records(), seeds)
def test_two_step_commitment_equals_the_direct_one(record, seed):
    values = commitment.field_values(record)
    unlinked = dataclasses.replace(record, prev=tuple((key, None) for key, _ in record.prev))
    # the prepared part never reads the history link: it is added when the record joins its parcels
    two_step = commitment.prepare(unlinked, seed).complete(values["prev"])
    assert two_step == commitment.commit(record, seed)


# --- v2: the same properties over v2's fields, and the schemes kept apart ------------------------------
V2 = commitment.SCHEME_V2
hex32 = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
references = st.lists(
    st.builds(Reference, st.sampled_from(["acts_on_mortgage", "discharges_lien", "corrects"]),
              number=st.from_regex(r"20[0-9]{2}-[0-9]{7}", fullmatch=True))
    | st.builds(Reference, st.sampled_from(["acts_on_mortgage", "corrects"]),
                book=st.from_regex(r"[0-9]{1,6}", fullmatch=True), page=st.from_regex(r"[0-9]{1,6}", fullmatch=True)),
    max_size=3,
)  # fmt: skip


@st.composite
def records_v2(draw):
    base = draw(records())
    return dataclasses.replace(
        base,
        document_date=draw(st.none() | st.dates().map(lambda d: d.isoformat())),
        page_count=draw(st.none() | st.integers(1, 100_000)),
        grantee_mailing_address=draw(st.none() | names),
        preparer=draw(st.none() | names),
        references=tuple(draw(references)),
        supersedes=draw(st.none() | hex32),
    )


@given(records_v2(), seeds)
def test_v2_bulk_hashing_equals_the_spec_and_an_independent_implementation(record, seed):
    values = commitment.field_values(record, V2)
    assert list(values) == [*commitment.FIELDS_V1, *commitment.FIELDS_V2[12:-1]] and len(values) == 19
    spec = [commitment.field_hash(n, commitment.field_salt(seed, n, V2), values[n], V2) for n in commitment.FIELDS_V2]
    prepared = commitment.prepare(record, seed, V2)
    assert list(prepared.field_hashes) == spec[:-1] and commitment.FIELDS_V2[-1] == "prev"
    assert commitment.commit(record, seed, V2) == commitment.combine(spec, V2) == spec_commitment(seed, values, V2)


@given(records_v2(), seeds)
def test_v2_every_redaction_keeps_the_commitment_and_every_change_moves_it(record, seed):
    full = commitment.commit(record, seed, V2)
    for name in commitment.FIELDS_V2:
        assert commitment.disclose(record, seed, redact=[name], scheme=V2).commitment() == full
    d = commitment.disclose(record, seed, scheme=V2)
    for name, (salt, value) in d.opened.items():
        changed = dict(d.opened)
        changed[name] = (salt, ["x"] if value != ["x"] else ["y"])
        assert commitment.Disclosure(opened=changed, scheme=V2).commitment() != full, name


@given(records(), seeds)
def test_the_same_record_commits_differently_under_each_scheme(record, seed):
    # domain separation: a v1 field hash or commitment is never a v2 one, so a bundle cannot be relabelled
    v1, v2 = commitment.disclose(record, seed, redact=commitment.FIELDS_V1), commitment.disclose(
        record, seed, redact=commitment.FIELDS_V2, scheme=V2)  # fmt: skip
    assert commitment.commit(record, seed) != commitment.commit(record, seed, V2)
    assert not set(v1.redacted.values()) & set(v2.redacted.values())


@given(records_v2(), seeds)
def test_v1_refuses_a_record_with_v2_fields_rather_than_leave_them_out(record, seed):
    if not record.has_v2_content:
        return
    with pytest.raises(ValueError, match="commit it under landreg-commitment/v2"):
        commitment.commit(record, seed)


def test_an_unknown_scheme_is_refused():
    v = load(VECTORS_V1[0])
    with pytest.raises(ValueError, match="not a commitment scheme"):
        commitment.commit(record_from_vector(v), bytes.fromhex(v["seed"]), "landreg-commitment/v3")


def test_eip55_check_agrees_with_eth_utils() -> None:
    """The verifier's own EIP-55 check (it does not load eth-utils) against eth-utils, on random
    addresses in their checksummed, lower, upper and one-letter-flipped forms."""
    import os

    from eth_utils import is_checksum_address as reference
    from eth_utils import to_checksum_address

    from hybrid_store.core.hashing import is_checksum_address

    for _ in range(500):
        good = to_checksum_address("0x" + os.urandom(20).hex())
        flip = next((i for i, c in enumerate(good) if i > 1 and c.isalpha()), None)
        forms = [good, good.lower(), "0x" + good[2:].upper(), good[:-1], good + "0", "0X" + good[2:], 5]
        if flip is not None:
            forms.append(good[:flip] + good[flip].swapcase() + good[flip + 1 :])
        for text in forms:
            assert is_checksum_address(text) == reference(text), text


hex_texts = st.one_of(
    st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex()),
    st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex().upper()),
    st.binary(min_size=31, max_size=33).map(lambda b: "0x" + b.hex()),
    st.binary(min_size=32, max_size=32).map(lambda b: "0X" + b.hex()),
    st.tuples(st.binary(min_size=32, max_size=32), st.integers(0, 65), st.sampled_from(" \t\nxX0gé")).map(
        lambda t: ("0x" + t[0].hex())[: t[1]] + t[2] + ("0x" + t[0].hex())[t[1] + 1 :]),
    st.text(max_size=70),
    st.integers(),
    st.none(),
)  # fmt: skip


@given(st.lists(hex_texts, max_size=20))
def test_many_hashes_read_at_once_are_read_as_each_alone(texts) -> None:
    """``hex32_many`` (a bundle's salts and proof in a few C calls) accepts exactly what ``is_hex32``
    accepts of each, and reads the same bytes."""
    from hybrid_store.core.hashing import hex32_bytes, hex32_many, is_hex32

    each = [hex32_bytes(t) for t in texts]
    assert [b is not None for b in each] == [is_hex32(t) for t in texts]
    assert hex32_many(texts) == (None if None in each else each)
