"""The embedded factual QA set, built deterministically from data shipped in PyPI packages.

Families (see pipeline/data/README.md for counts and caveats):
  capital         "What is the capital of France?" -> "Paris"          (countryinfo)
  element_symbol  "What is the chemical symbol for iron?" -> "Fe"      (periodictable)
  atomic_number   "What is the atomic number of iron?" -> "26"         (periodictable)
  element_name    "Which chemical element has the symbol Fe?" -> "Iron" (periodictable)
and the geographic families of pipeline/data/world.py (cities, currencies, calling codes,
continents, languages, US state capitals).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from importlib.metadata import version

from pipeline.data import world
from pipeline.data.items import QAItem

ELEMENT_FAMILIES = ("element_symbol", "atomic_number", "element_name")
FAMILIES = ("capital", *ELEMENT_FAMILIES, *world.FAMILIES)

# family -> (question template, statement template); {s} is the subject phrase, {a} the answer.
TEMPLATES: dict[str, tuple[str, str]] = {
    "capital": ("What is the capital of {s}?", "The capital of {s} is {a}."),
    "element_symbol": ("What is the chemical symbol for {s}?", "The chemical symbol for {s} is {a}."),
    "atomic_number": ("What is the atomic number of {s}?", "The atomic number of {s} is {a}."),
    "element_name": (
        "Which chemical element has the symbol {s}?",
        "The chemical element with the symbol {s} is {a}.",
    ),
    **world.TEMPLATES,
}

# countryinfo keys left out, with the reason (README lists them).
SKIP_COUNTRIES: dict[str, str] = {
    "antilles néerlandaises": "dissolved in 2010; duplicates Curaçao (Willemstad); French-language name",
    "serbia and montenegro": "dissolved in 2006; duplicates Serbia (Belgrade)",
    "burma": "duplicate of Myanmar",
    "holy see (vatican city state)": "duplicate of Vatican City State",
    "palestine": "disputed capital; the package has two conflicting entries",
    "palestine, state of": "disputed capital; the package has two conflicting entries",
    "western sahara": "disputed territory",
    "bonaire, sint eustatius and saba": "three capitals in one field",
    "swaziland": "renamed Eswatini; two capitals (Mbabane, Lobamba)",
    "hong kong": "no formal capital ('City of Victoria' is a historical name)",
}

# Display names for keys whose package name is inverted or qualified.
RENAMES: dict[str, str] = {
    "virgin islands, british": "British Virgin Islands",
    "virgin islands, u.s.": "United States Virgin Islands",
    "saint martin (french part)": "Saint Martin",
    "sint maarten (dutch part)": "Sint Maarten",
}

# Names read with "the" in a question ("the capital of the Netherlands").
WITH_THE = frozenset(
    {
        "british indian ocean territory", "cayman islands", "central african republic", "cocos (keeling) islands",
        "comoros", "cook islands", "czech republic", "democratic republic of the congo", "dominican republic",
        "falkland islands", "faroe islands", "federated states of micronesia", "french southern and antarctic lands",
        "isle of man", "maldives", "marshall islands", "netherlands", "northern mariana islands", "philippines",
        "pitcairn islands", "republic of macedonia", "republic of the congo", "seychelles", "solomon islands",
        "turks and caicos islands", "united arab emirates", "united kingdom", "united states",
        "virgin islands, british", "virgin islands, u.s.", "åland islands",
    }
)  # fmt: skip

# Accepted alternatives: other official capitals or seats of government, renamings, common spellings.
CAPITAL_ALIASES: dict[str, tuple[str, ...]] = {
    "united states": ("Washington", "Washington, D.C.", "Washington DC"),
    "bolivia": ("La Paz",),
    "benin": ("Cotonou",),
    "ivory coast": ("Abidjan",),
    "netherlands": ("The Hague",),
    "malaysia": ("Putrajaya",),
    "south africa": ("Cape Town", "Bloemfontein"),
    "sri lanka": ("Sri Jayawardenepura Kotte", "Kotte"),
    "kazakhstan": ("Astana",),
    "myanmar": ("Nay Pyi Taw", "Naypyitaw"),
    "ukraine": ("Kiev",),
    "mongolia": ("Ulan Bator",),
    "switzerland": ("Berne",),
    "india": ("Delhi",),
    "kiribati": ("Tarawa",),
}

# periodictable uses US spellings; accept the IUPAC/British ones for element names.
ELEMENT_NAME_ALIASES: dict[str, tuple[str, ...]] = {
    "aluminum": ("Aluminium",),
    "cesium": ("Caesium",),
    "sulfur": ("Sulphur",),
}


def slug(text: str) -> str:
    """ASCII id fragment: "São Tomé and Príncipe" -> "sao-tome-and-principe"."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def _saint_variants(answer: str) -> tuple[str, ...]:
    if answer.startswith("Saint "):
        return ("St. " + answer[6:],)
    if answer.startswith("St. "):
        return ("Saint " + answer[4:],)
    return ()


def _capital(raw: object) -> str | None:
    if isinstance(raw, list):
        raw = raw[0] if len(raw) == 1 else None
    if not isinstance(raw, str) or not raw.strip() or "/" in raw:
        return None
    return raw.strip()


def capitals() -> list[QAItem]:
    """Country (and territory) capitals from countryinfo, sorted by package key."""
    from countryinfo import CountryInfo

    source = f"countryinfo=={version('countryinfo')}"
    question = TEMPLATES["capital"][0]
    items = []
    for key, info in sorted(CountryInfo.all().items()):
        answer = _capital(info.get("capital"))
        if key in SKIP_COUNTRIES or answer is None:
            continue
        name = RENAMES.get(key, info.get("name") or key.title())
        phrase = f"the {name}" if key in WITH_THE else name
        if phrase.startswith("The "):
            phrase = "the " + phrase[4:]
        aliases = CAPITAL_ALIASES.get(key, ()) + _saint_variants(answer)
        items.append(
            QAItem(
                id=f"capital/{slug(key)}",
                family="capital",
                subject=name,
                question=question.format(s=phrase),
                answer=answer,
                aliases=aliases,
                source=source,
            )
        )
    return items


def elements() -> list[QAItem]:
    """Element symbol, atomic number and name-from-symbol questions from periodictable (Z = 1..118)."""
    import periodictable

    source = f"periodictable=={version('periodictable')}"
    rows = sorted((el.number, el.symbol, el.name) for el in periodictable.elements if el.number >= 1)
    by_family: dict[str, list[QAItem]] = {f: [] for f in ELEMENT_FAMILIES}
    for number, symbol, name in rows:
        name_aliases = ELEMENT_NAME_ALIASES.get(name, ())
        for family, subject, answer, aliases in (
            ("element_symbol", name, symbol, ()),
            ("atomic_number", name, str(number), ()),
            ("element_name", symbol, name.capitalize(), name_aliases),
        ):
            by_family[family].append(
                QAItem(
                    id=f"{family}/{slug(subject)}",
                    family=family,
                    subject=subject,
                    question=TEMPLATES[family][0].format(s=subject),
                    answer=answer,
                    aliases=aliases,
                    source=source,
                )
            )
    return [item for family in ELEMENT_FAMILIES for item in by_family[family]]


@lru_cache(maxsize=1)
def _build() -> tuple[QAItem, ...]:
    items = capitals() + elements() + world.world()
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"duplicate item ids in the embedded QA set: {dupes}")
    return tuple(items)


def build_embedded() -> list[QAItem]:
    """The embedded QA set, in a fixed order (families in FAMILIES order, then by package key / Z)."""
    return list(_build())
