"""The municipalities this registry records for, shipped with the package (Bergen County's 70,
copied from the NJ municipality code list; see hybrid_store/data/municipalities.csv)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib.resources import files


@dataclass(frozen=True)
class MunicipalityInfo:
    code: str  # 4-digit NJ code: county + district
    county_code: str
    district_code: str
    name: str
    kind: str


@cache
def municipalities() -> tuple[MunicipalityInfo, ...]:
    text = files("hybrid_store").joinpath("data/municipalities.csv").read_text(encoding="utf-8")
    return tuple(
        MunicipalityInfo(
            code=row["nj_muni_code"],
            county_code=row["county_code"],
            district_code=row["district_code"],
            name=row["official_name"],
            kind=row["municipality_type"],
        )
        for row in csv.DictReader(io.StringIO(text))
    )


@cache
def municipality_codes() -> frozenset[str]:
    return frozenset(m.code for m in municipalities())


def municipality_name(code: str) -> str:
    return next((m.name for m in municipalities() if m.code == code), code)
