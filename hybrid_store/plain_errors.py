"""Validation errors in the clerk's words: what is wrong with which field, and what to do.

Pydantic and the JSON parser describe a broken rule in their own terms ("List should have at least
1 item after validation, not 0", "Input should be a valid decimal"); a clerk cannot act on those.
Every error a filing, a query or a request body can raise passes through ``plain_message``, which
looks the error up by its type and the field it is on, and falls back to a plain sentence that
never repeats the library's message. The rules landreg writes itself (``PydanticCustomError`` with
a type of its own) already speak plainly; they only gain the field's name in front when they begin
with a bare verb ("must be 4 digits" -> "The municipality code must be 4 digits").

Pure: no database, no web framework; the API, the desk and the importers all call it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

#: each field in words (singular: "a grantee"); the last name in an error's path picks the entry
FIELD_WORDS: dict[str, str] = {
    "doc_type": "the document type",
    "grantors": "the grantors",
    "grantees": "the grantees",
    "grantor": "the grantor's name",
    "grantee": "the grantee's name",
    "parcels": "the parcels",
    "municipality_code": "the municipality",
    "borough": "the borough",
    "block": "the block",
    "lot": "the lot",
    "qualifier": "the qualifier",
    "consideration": "the consideration",
    "legal_description": "the legal description",
    "document_digest": "the scanned document",
    "document": "the scanned document",
    "corrects": "the number of the instrument corrected",
    "document_date": "the date of the instrument",
    "page_count": "the number of pages",
    "grantee_mailing_address": "the grantee's mailing address",
    "preparer": "the name of who prepared the instrument",
    "return_to": "the return-to address",
    "references": "the cross-references",
    "kind": "what the instrument acts on",
    "instrument_number": "the instrument number",
    "book": "the book",
    "page": "the page",
    "recorded_at": "the recording time",
    "property_class": "the property class",
    "exemption_claimed": "the exemption claimed",
    "attestations": "the attestations",
    "confirm": "the findings confirmed",
    "confirm_reason": "the reason for confirming",
    "reason": "the reason",
    "limit": "the number of results",
    "cursor": "the page of results",
    "receipt": "the receipt",
    "bundle": "the proof bundle",
    "day": "the day",
    "from": "the first day of the search",
    "to": "the last day of the search",
    "from_": "the first day of the search",
    "state": "the state of the submissions",
    "party": "the party's name",
    "parcel": "the parcel",
    "type": "the document type",
    "submission_id": "the submission number",
    "flag_id": "the flag number",
}

#: the list fields, and what one item of each is called
ITEM_WORDS: dict[str, str] = {
    "grantors": "grantor",
    "grantees": "grantee",
    "parcels": "parcel",
    "references": "cross-reference",
    "attestations": "attestation",
    "confirm": "finding",
}

#: (error type, field) -> the message; the most specific messages, for the errors clerks meet most
BY_FIELD: dict[tuple[str, str], str] = {
    ("too_short", "grantors"): "No grantor is given: name at least one grantor, the party conveying or granting.",
    ("too_short", "grantees"): "No grantee is given: name at least one grantee, the party receiving.",
    ("too_short", "parcels"): (
        "No parcel is given: give at least one parcel's municipality, block and lot, as the tax map has them."
    ),
    ("missing", "grantors"): "No grantor is given: name at least one grantor, the party conveying or granting.",
    ("missing", "grantees"): "No grantee is given: name at least one grantee, the party receiving.",
    ("missing", "parcels"): "No parcel is given: give at least one parcel's municipality, block and lot.",
    ("missing", "doc_type"): "No document type is given: choose what the instrument is, e.g. DEED or MORTGAGE.",
    ("missing", "document_digest"): (
        "No scanned document is attached: attach the scan (PDF or image), or type its SHA-256 "
        "(64 characters, 0-9 and a-f)."
    ),
    ("sha256_format", "document_digest"): (
        "This is not a SHA-256 of a scan (64 characters, 0-9 and a-f): attach the scanned document and the "
        "desk works it out, or copy the SHA-256 again."
    ),
    ("missing", "municipality_code"): "No municipality is chosen for this parcel: choose it from the list.",
    ("string_too_short", "municipality_code"): "No municipality is chosen for this parcel: choose it from the list.",
    ("string_too_long", "municipality_code"): (
        "A municipality code is 4 digits, e.g. 0223: choose the municipality from the list."
    ),
    ("missing", "borough"): "No borough is chosen for this parcel: choose it from the list.",
    ("string_too_short", "borough"): "No borough is chosen for this parcel: choose it from the list.",
    ("missing", "block"): "No block is given for this parcel: type it as the tax map has it, e.g. 100.01.",
    ("string_too_short", "block"): "No block is given for this parcel: type it as the tax map has it, e.g. 100.01.",
    ("missing", "lot"): "No lot is given for this parcel: type it as the tax map has it, e.g. 5.",
    ("string_too_short", "lot"): "No lot is given for this parcel: type it as the tax map has it, e.g. 5.",
    ("missing", "kind"): (
        "Say what the instrument acts on: a mortgage (an assignment, satisfaction or release), a lien (a "
        "discharge) or an instrument it corrects."
    ),
    ("less_than_equal", "consideration"): (
        "The consideration is more than ${le:,.2f}, the most the registry records: check it against the document."
    ),
    ("greater_than_equal", "consideration"): (
        "The consideration is below zero: type the amount without a minus sign, e.g. 350000.00."
    ),
    ("string_too_short", "reason"): "No reason is given: say why (it is kept in the audit log with your name).",
    ("missing", "reason"): "No reason is given: say why (it is kept in the audit log with your name).",
}

AMOUNT_EXAMPLE = "type digits 0-9 with up to two decimals, e.g. 350000.00"

#: error type -> message, with ``{what}`` (the field in words), ``{What}`` (capitalised), ``{item}``
#: (what one item of a list is called) and the error's own figures (``{min_length}``, ``{le}``, ...)
BY_TYPE: dict[str, str] = {
    "missing": "{What} is missing: fill it in.",
    "extra_forbidden": "{field} is not a field here: check its spelling, or leave it out.",
    "string_type": "{What} is not text: type it as words and digits.",
    "string_too_short": "{What} is empty: fill it in.",
    "string_too_long": "{What} is longer than {max_length:,} characters, the most the registry keeps: shorten it.",
    "string_pattern_mismatch": "{What} is not in the form the registry takes: check it against the document.",
    "list_type": "{What} is not a list: give each {item} on its own.",
    "too_short": "Give at least {min_length:,} {item}{s}.",
    "too_long": (
        "More than {max_length:,} {item}s are given; one filing takes at most {max_length:,}: check the list, "
        "and ask the recorder's office if the document names more."
    ),
    "enum": "{What} is not one the registry knows: choose one of {expected}.",
    "literal_error": "{What} is not one the registry knows: choose one of {expected}.",
    "decimal_parsing": f"{{What}} is not an amount in dollars: {AMOUNT_EXAMPLE}.",
    "decimal_type": f"{{What}} is not an amount in dollars: {AMOUNT_EXAMPLE}.",
    "decimal_max_places": "{What} has more than two decimals: give dollars and cents, e.g. 350000.00.",
    "decimal_max_digits": "{What} has more digits than any amount the registry records: check it.",
    "decimal_whole_digits": "{What} has more digits than any amount the registry records: check it.",
    "finite_number": f"{{What}} is not an amount in dollars: {AMOUNT_EXAMPLE}.",
    "greater_than_equal": "{What} is less than {ge:,}: check it against the document.",
    "greater_than": "{What} is not more than {gt:,}: check it against the document.",
    "less_than_equal": "{What} is more than {le:,}, the most the registry takes: check it against the document.",
    "less_than": "{What} is not less than {lt:,}: check it against the document.",
    "int_type": "{What} is not a whole number: type digits 0-9 only, e.g. 3.",
    "int_parsing": "{What} is not a whole number: type digits 0-9 only, e.g. 3.",
    "int_from_float": "{What} is not a whole number: type digits 0-9 only, e.g. 3.",
    "bool_type": "{What} is not yes or no: give true or false.",
    "bool_parsing": "{What} is not yes or no: give true or false.",
    "date_type": "{What} is not a date: write it YYYY-MM-DD, e.g. 2026-03-02.",
    "date_parsing": "{What} is not a date: write it YYYY-MM-DD, e.g. 2026-03-02.",
    "date_from_datetime_parsing": "{What} is not a date: write it YYYY-MM-DD, e.g. 2026-03-02.",
    "datetime_type": "{What} is not a date and time: write it like 2026-03-02T10:15:00-05:00.",
    "datetime_parsing": "{What} is not a date and time: write it like 2026-03-02T10:15:00-05:00.",
    "datetime_from_date_parsing": "{What} is not a date and time: write it like 2026-03-02T10:15:00-05:00.",
    "timezone_aware": "{What} has no time zone: write it like 2026-03-02T10:15:00-05:00.",
    "model_type": "{What} is not a set of named fields: give it as a JSON object.",
    "model_attributes_type": "{What} is not a set of named fields: give it as a JSON object.",
    "dict_type": "{What} is not a set of named fields: give it as a JSON object.",
    "json_invalid": "The request is not JSON: send the instrument as a JSON object.",
    "json_type": "The request is not JSON: send the instrument as a JSON object.",
    "frozen_instance": "{What} cannot be changed here.",
}

#: used for an error nobody foresaw: plain words, and never the library's message
FALLBACK = "{What} could not be read as given: check it against the document and type it again."

#: the start of a message landreg wrote without a subject ("must be 4 digits", "contains ...")
_BARE_VERBS = ("must ", "contains ", "is before ", "is in the future", "is given ")


def field_words(loc: Sequence[str | int]) -> tuple[str, str]:
    """What the field at ``loc`` is called, and what one item of it is called (for lists)."""
    names = [p for p in loc if isinstance(p, str) and p not in ("body", "query", "path", "header")]
    last = names[-1] if names else ""
    item = ITEM_WORDS.get(last, "item")
    if loc and isinstance(loc[-1], int) and last in ITEM_WORDS:  # one item of a list: "the grantee's name"
        return FIELD_WORDS.get(ITEM_WORDS[last], f"the {ITEM_WORDS[last]}"), item
    return FIELD_WORDS.get(last, f"the {last.replace('_', ' ')}" if last else "the filing"), item


def plain_message(error: Mapping[str, Any]) -> str:
    """``error`` (one of pydantic's ``errors()``, or one shaped like it) in the clerk's words."""
    kind = str(error.get("type", ""))
    loc = tuple(error.get("loc", ()))
    names = [p for p in loc if isinstance(p, str) and p not in ("body", "query", "path", "header")]
    last = names[-1] if names else ""
    ctx = dict(error.get("ctx") or {})
    what, item = field_words(loc)
    if kind == "sha256_format" and str(error.get("input", "")).strip() == "":
        kind = "missing"  # an empty digest box with no file chosen: nothing is attached
    template = BY_FIELD.get((kind, last))
    if template is None and kind == "too_short" and ctx.get("min_length") == 1:
        template = BY_FIELD.get(("missing", last))
    if kind == "value_error" and str(error.get("msg", "")).startswith("Value error, "):
        # a ValueError a validator of ours raised: its words are ours, behind the library's label
        return _with_subject(str(error["msg"]).removeprefix("Value error, "), what)
    if template is None and kind not in BY_TYPE and _is_ours(error):
        return _with_subject(str(error.get("msg", "")), what)
    template = template or BY_TYPE.get(kind, FALLBACK)
    values = {"what": what, "What": _capital(what), "item": item, "field": repr(last or "(field)"),
              "s": "" if ctx.get("min_length") == 1 else "s"}  # fmt: skip
    values.update({k: _figure(v) for k, v in ctx.items() if k not in values})
    try:
        return template.format(**values)
    except (KeyError, ValueError, IndexError):  # a figure the error did not carry: say it without one
        return FALLBACK.format(What=_capital(what))


def _is_ours(error: Mapping[str, Any]) -> bool:
    """A rule landreg wrote (``PydanticCustomError`` with a type of its own): its message is ours."""
    return bool(error.get("msg")) and str(error.get("type", "")) not in _LIBRARY_TYPES


def _with_subject(message: str, what: str) -> str:
    if message.startswith(_BARE_VERBS):
        return f"{_capital(what)} {message}"
    return message


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _figure(value: Any) -> Any:
    # numbers in the context print with thousands separators ("{le:,}"); anything else as text
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return str(value)
    return value


#: pydantic-core's own error types: a message under one of these is the library's, never shown
_LIBRARY_TYPES = frozenset(
    {
        *BY_TYPE,
        "value_error", "assertion_error", "union_tag_invalid", "union_tag_not_found", "arguments_type",
        "missing_argument", "unexpected_keyword_argument", "float_type", "float_parsing", "bytes_type",
        "tuple_type", "set_type", "uuid_type", "uuid_parsing", "url_type", "url_parsing", "none_required",
        "is_instance_of", "callable_type", "iterable_type", "iteration_error", "string_unicode",
        "string_sub_type", "time_type", "time_parsing", "date_past", "date_future", "datetime_past",
        "datetime_future", "timezone_naive", "multiple_of", "int_from_float", "recursion_loop",
    }
)  # fmt: skip
