"""The cleaning rules every legacy reader shares: whitespace, names, digits.

Real recorder data is messy in the same ways whether it arrives as files or from a database, so
the SR1A and CSV readers and the database layouts all clean it here, the same way: whitespace of
every kind collapsed, names written ``LAST, FIRST`` turned around (firm names left alone),
look-alike letters of other scripts folded to Latin inside Latin names, and numbers in ASCII
digits only (``hybrid_store.plain_numbers``, the rule the API reads numbers by too). (Document
types and party roles are data: each layout's; the CSV export reads the ``landreg-export``
layout's.)
"""

from __future__ import annotations

import re
import unicodedata

FIRM_WORDS = re.compile(
    r"\b(N\.?A\.?|INC\.?|LLC|L\.L\.C\.|CORP\.?|CORPORATION|CO\.?|COMPANY|LTD\.?|L\.?P\.?|LLP|BANK|TRUST|ASSOCIATION|"
    r"FEDERAL|SAVINGS|TRUSTEE|ESTATE|SYSTEMS|AUTHORITY|COUNTY|STATE|CITY|BOROUGH|TOWNSHIP|UNITED STATES)\b"
)
SUFFIXES = {"JR", "JR.", "SR", "SR.", "II", "III", "IV", "ESQ", "ESQ."}
# Letters of other scripts that look like Latin capitals (the usual culprits in keyed names)
CONFUSABLES = str.maketrans({
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "Х": "X",
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "Ι": "I", "Α": "A", "Β": "B", "Ε": "E",
    "Ζ": "Z", "Η": "H", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
})  # fmt: skip


def clean(text: str | None) -> str:
    """Collapse every kind of whitespace (tabs, NBSP, ...) to one space; strip."""
    if not text:
        return ""
    if text.isascii():  # (most of a book: nothing to normalise)
        return " ".join(text.split())
    return " ".join(unicodedata.normalize("NFC", text).replace("\u00a0", " ").split())


def fold_lookalikes(name: str) -> str:
    """Fold other-script look-alikes to Latin in a name that is otherwise Latin script."""
    if name.isascii():
        return name
    letters = [ch for ch in name if ch.isalpha()]
    latin = sum(1 for ch in letters if "LATIN" in unicodedata.name(ch, ""))
    if letters and latin >= len(letters) / 2:
        return name.translate(CONFUSABLES)
    return name


def person_name(raw: str) -> str:
    """``SMITH, JOHN Q., JR.`` -> ``JOHN Q. SMITH JR.`` (and ``SMITH JR, JOHN`` -> ``JOHN SMITH JR``);
    firm names and names without a comma (``JOHN SMITH``) are kept as written."""
    name = fold_lookalikes(clean(raw))
    if "," not in name or FIRM_WORDS.search(name.upper()):
        return name
    parts = [p.strip() for p in name.split(",") if p.strip()]
    if len(parts) < 2:
        return name
    last, rest = parts[0], parts[1:]
    suffix = [p for p in rest if p.upper() in SUFFIXES]
    given = [p for p in rest if p.upper() not in SUFFIXES]
    return " ".join([*given, last, *suffix])


def mailing_address(*lines: str | None) -> str | None:
    """An address from its lines as a legacy source keeps them (street; city, state and ZIP): each
    line cleaned, blank lines dropped, None when nothing is left. An address with a control
    character is left out rather than quarantining its document: it is optional, the deed is not."""
    kept = [clean(line) for line in lines if clean(line)]
    text = "\n".join(kept)
    if not text or len(text) > MAX_ADDRESS or "\ufffd" in text:
        return None
    if any(unicodedata.category(ch) == "Cc" for ch in text.replace("\n", "")):
        return None
    return text


MAX_ADDRESS = 500  # a filing's limit (jurisdictions.base.Limits.address): a longer one is no address
