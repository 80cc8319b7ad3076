"""Name rules: how a registry's index folds a party's name, and how a search reads a clerk's words.

A grantor-grantee index is searched by people typing what they see on a deed, in whatever order,
case, punctuation and spelling of accents. So a name is indexed as its *words*, folded: upper case,
accents dropped, letters that Unicode decomposition leaves alone (Ø, Æ, Ł, ß, Đ, Þ, Œ, ...) spelled
as the keyboard spells them, apostrophes and periods dropped (O'BRIEN is OBRIEN, J.R. is JR), any
other punctuation a word break. A search matches a name when each of its words begins a word of the
name, in any order: "SMITH JOHN" finds "John Smith", "SOREN" finds "SØREN".

A suffix (JR, SR, III, ...) is a word like any other, never folded away: to an examiner JOHN SMITH JR
is another person than JOHN SMITH. A search for JOHN SMITH shows both (it says nothing of a suffix);
a search for JOHN SMITH JR shows only names that carry that suffix, spelt any way the profile
declares (JUNIOR is JR), and the suffix is matched as a whole word (JR never begins JRX).

Pure: no database. The folded form is what ``party_name_keys`` stores (revision 0021), so changing a
folding rule means rebuilding that table's keys (`hybrid_store.name_index.rebuild`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

#: letters with no decomposition (NFKD leaves them whole), as an English keyboard spells them
LETTERS: Mapping[str, str] = MappingProxyType({
    "Ø": "O", "ø": "o", "Æ": "AE", "æ": "ae", "Ł": "L", "ł": "l", "ß": "SS", "ẞ": "SS", "Đ": "D", "đ": "d",
    "Ð": "D", "ð": "d", "Þ": "TH", "þ": "th", "Œ": "OE", "œ": "oe", "Ħ": "H", "ħ": "h", "ı": "i", "Ŀ": "L",
    "ŀ": "l", "Ŋ": "NG", "ŋ": "ng", "Ŧ": "T", "ŧ": "t", "ĸ": "K", "ſ": "s", "Ə": "E", "ə": "e", "Ɖ": "D",
    "ɖ": "d", "Ƒ": "F", "ƒ": "f", "Ɨ": "I", "ɨ": "i", "Ƶ": "Z", "ƶ": "z",
})  # fmt: skip
_JOINERS = re.compile(r"['’‘`.]")  # O'BRIEN, J.R., ST.: the word goes on
_BREAKS = re.compile(r"[^0-9A-Z]+")
#: the longest folded key: a 200-character name can at most double (Æ is AE), plus the framing spaces
MAX_KEY = 2 * 200 + 2


@dataclass(frozen=True)
class Term:
    """One word of a search: it must begin a word of the name, or (a suffix) be one."""

    word: str
    whole: bool = False

    def tsquery(self) -> str:
        """The term in PostgreSQL's full-text query syntax (``john:*``; a suffix ``jr``), for the
        ``simple`` configuration, which lower-cases. The word is [A-Z0-9]+: nothing to quote."""
        return self.word.lower() if self.whole else f"{self.word.lower()}:*"

    def like(self) -> str:
        """The LIKE pattern over a stored key (words framed by spaces; never a LIKE wildcard inside)."""
        return f"% {self.word} %" if self.whole else f"% {self.word}%"


@dataclass(frozen=True)
class NameRules:
    """A jurisdiction's name rules. ``suffixes``: each generational suffix a registry's names carry,
    its canonical spelling first and then the others the index reads as it (JUNIOR is JR)."""

    suffixes: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    letters: Mapping[str, str] = field(default_factory=lambda: LETTERS)

    def words(self, text: str) -> list[str]:
        """``text``'s words, folded, suffixes in their canonical spelling."""
        decomposed = unicodedata.normalize("NFKD", "".join(self.letters.get(c, c) for c in text))
        plain = "".join(c for c in decomposed if not unicodedata.combining(c))
        plain = "".join(self.letters.get(c, c) for c in plain).upper()  # a compatibility form may yield one
        return [self._alias.get(w, w) for w in _BREAKS.split(_JOINERS.sub("", plain)) if w]

    def key(self, name: str) -> str:
        """What the index stores for a name: its folded words, framed by spaces (`` JOHN SMITH JR ``)."""
        return " " + " ".join(self.words(name)) + " "

    def terms(self, query: str) -> list[Term]:
        """The words a search for ``query`` asks of a name (none: the query holds no letter or digit)."""
        seen: dict[str, Term] = {}
        for w in self.words(query):
            seen.setdefault(w, Term(w, whole=w in self.suffixes))
        return list(seen.values())

    def matches(self, query: str, name: str) -> bool:
        """The rule itself, for one name (the database applies it through ``Term.like``)."""
        key = self.key(name)
        terms = self.terms(query)
        return bool(terms) and all((f" {t.word} " if t.whole else f" {t.word}") in key for t in terms)

    @cached_property
    def _alias(self) -> dict[str, str]:
        return {alias: canonical for canonical, aliases in self.suffixes.items() for alias in aliases}


#: the suffixes a United States land record carries (a name's generation), in the spellings deeds use
US_SUFFIXES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "JR": ("JUNIOR", "JNR"), "SR": ("SENIOR", "SNR"), "II": ("2ND",), "III": ("3RD",), "IV": ("4TH",),
})  # fmt: skip
US_NAMES = NameRules(suffixes=US_SUFFIXES)
