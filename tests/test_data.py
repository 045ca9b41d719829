"""pipeline.data: the embedded QA set, normalisation and matching, prompts, counterfactuals, TriviaQA."""

from __future__ import annotations

import hashlib
import random
import sys
from collections import Counter
from types import SimpleNamespace

import pytest

from pipeline.data import (
    FAMILIES,
    QAItem,
    build_embedded,
    counterfactual_item,
    dataset_hash,
    few_shot_prompt,
    load_jsonl,
    load_triviaqa,
    matches,
    normalize,
    save_jsonl,
    statement,
)
from pipeline.data import embedded as embedded_data


@pytest.fixture(scope="module")
def items() -> list[QAItem]:
    return build_embedded()


@pytest.fixture(scope="module")
def by_id(items: list[QAItem]) -> dict[str, QAItem]:
    return {it.id: it for it in items}


def test_size_families_and_ids(items: list[QAItem]) -> None:
    assert len(items) >= 2000
    counts = Counter(it.family for it in items)
    assert set(counts) == set(FAMILIES) and len(counts) >= 6
    assert counts["capital"] >= 200 and all(counts[f] == 118 for f in embedded_data.ELEMENT_FAMILIES)
    assert counts["city_country"] == 1500 and counts["state_capital"] == 50
    assert len({it.id for it in items}) == len(items)
    assert all(it.id.startswith(it.family + "/") and it.answer and it.question.endswith("?") for it in items)
    assert not any(key in embedded_data.SKIP_COUNTRIES for key in (it.id.split("/")[1] for it in items))


def test_known_facts(by_id: dict[str, QAItem]) -> None:
    assert by_id["capital/france"].answer == "Paris"
    assert by_id["capital/netherlands"].question == "What is the capital of the Netherlands?"
    assert by_id["capital/united-states"].aliases[:2] == ("Washington", "Washington, D.C.")
    assert (by_id["element_symbol/iron"].question, by_id["element_symbol/iron"].answer) == (
        "What is the chemical symbol for iron?", "Fe",
    )  # fmt: skip
    assert by_id["atomic_number/iron"].answer == "26"
    assert by_id["element_name/fe"].answer == "Iron"
    assert by_id["capital/france"].source.startswith("countryinfo==")
    assert by_id["currency/japan"].answer == "Yen" and "Japanese yen" in by_id["currency/japan"].aliases
    assert by_id["calling_code/france"].answer == "33" and "+33" in by_id["calling_code/france"].aliases
    assert by_id["continent/kenya"].answer == "Africa"
    assert by_id["state_capital/texas"].answer == "Austin"
    assert by_id["continent/netherlands"].question == "On which continent is the Netherlands?"


def test_city_questions_name_unique_cities_that_do_not_give_their_country_away(items: list[QAItem]) -> None:
    cities = [it for it in items if it.family == "city_country"]
    assert len({it.subject for it in cities}) == len(cities)
    assert not any(it.answer.casefold() in it.subject.casefold() for it in cities)
    gb = [it for it in cities if it.answer == "United Kingdom"]
    assert gb and all(any(a in it.aliases for a in ("England", "Scotland", "Wales", "Northern Ireland", "UK"))
                      for it in gb)


def test_build_is_deterministic(tmp_path, items: list[QAItem]) -> None:
    embedded_data._build.cache_clear()
    again = build_embedded()
    assert again == items and dataset_hash(again) == dataset_hash(items)
    path = save_jsonl(items, tmp_path / "qa.jsonl")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == dataset_hash(items)
    assert load_jsonl(path) == items
    assert path.read_text(encoding="utf-8").splitlines()[0].startswith('{"aliases":[],"answer":"Kabul"')
    assert dataset_hash(items[1:]) != dataset_hash(items)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("San José", "san jose"),
        ("  tokyo.", "tokyo"),
        ("Washington, D.C.", "washington dc"),
        ("Washington D.C.", "washington dc"),
        ("The Hague", "hague"),
        ("Port-au-Prince", "port au prince"),
        ("Sana'a", "sanaa"),
        ("Nuku’alofa", "nukualofa"),
        ("Hagåtña", "hagatna"),
        ("  Fe\t", "fe"),
        ("Theodore", "theodore"),
        ("", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def _item(answer: str, *aliases: str) -> QAItem:
    return QAItem(id="t/x", family="t", subject="x", question="?", answer=answer, aliases=aliases)


@pytest.mark.parametrize(
    ("generation", "answer", "aliases", "expected"),
    [
        ("San Jose", "San José", (), True),
        ("  tokyo.", "Tokyo", (), True),
        (" Tokyo\nQ: What is", "Tokyo", (), True),
        (" Tokyo, Japan", "Tokyo", (), True),
        ("Washington", "Washington D.C.", ("Washington", "Washington, D.C."), True),
        ("Washington, D.C.", "Washington D.C.", ("Washington",), True),
        ("Fe", "fe", (), True),
        (" the Valley", "The Valley", (), True),
        ("Tokyoite", "Tokyo", (), False),
        ("Andorra", "Andorra la Vella", (), False),
        ("260", "26", (), False),
        ("2", "26", (), False),
        ("\nTokyo", "Tokyo", (), False),
        ("", "Tokyo", (), False),
        ("Kyoto", "Tokyo", (), False),
    ],
)
def test_matches(generation: str, answer: str, aliases: tuple[str, ...], expected: bool) -> None:
    assert matches(generation, _item(answer, *aliases)) is expected


def test_matches_real_items(by_id: dict[str, QAItem]) -> None:
    assert matches(" San Jose", by_id["capital/costa-rica"])
    assert matches(" Washington", by_id["capital/united-states"])
    assert matches(" Washington, D.C.", by_id["capital/united-states"])
    assert matches(" St. John's", by_id["capital/antigua-and-barbuda"])
    assert matches(" Aluminium", by_id["element_name/al"])
    assert not matches(" Fe", by_id["element_symbol/tin"])


def test_few_shot_prompt_never_shows_its_own_answer(items: list[QAItem]) -> None:
    family_heads = {f: embedded_data.TEMPLATES[f][0].split("{s}")[0] for f in FAMILIES}
    for it in items:
        prompt = few_shot_prompt(it, n_shots=4)
        assert prompt.endswith(f"Q: {it.question}\nA:")
        assert prompt.count("Q: ") == 5 and prompt.count(family_heads[it.family]) == 5
        assert f"A: {it.answer}\n" not in prompt and f"Q: {it.question}\nA: " not in prompt


def test_few_shot_prompt_is_stable(items: list[QAItem], by_id: dict[str, QAItem]) -> None:
    japan = by_id["capital/japan"]
    assert few_shot_prompt(japan, 2) == few_shot_prompt(japan, 2, pool=list(reversed(items)))
    assert few_shot_prompt(japan, 2) != few_shot_prompt(japan, 2, seed=1)
    assert few_shot_prompt(japan, 0) == "Q: What is the capital of Japan?\nA:"
    # Most items of a family share one prefix (a stable context for activation studies).
    prefixes = Counter(few_shot_prompt(it, 3).rsplit("Q: ", 1)[0] for it in items if it.family == "capital")
    assert prefixes.most_common(1)[0][1] >= len([it for it in items if it.family == "capital"]) - 3


def test_statement_and_counterfactual(items: list[QAItem], by_id: dict[str, QAItem]) -> None:
    nl = by_id["capital/netherlands"]
    assert statement(nl) == "The capital of the Netherlands is Amsterdam."
    assert statement(by_id["element_name/fe"], "Gold") == "The chemical element with the symbol Fe is Gold."
    for it in items[::7]:
        cf = counterfactual_item(it, 3)
        assert cf == counterfactual_item(it, 3)
        assert cf.source_id != it.id and cf.source_id.split("/")[0] == it.family
        assert not matches(cf.false_answer, it) and cf.false_answer in cf.context
        assert cf.context == statement(it, cf.false_answer)
        assert matches(cf.false_answer, cf.as_item())
    rng_a, rng_b = random.Random(5), random.Random(5)
    assert [counterfactual_item(it, rng_a) for it in items[:20]] == [
        counterfactual_item(it, rng_b) for it in items[:20]
    ]


def test_triviaqa_loader_with_mocked_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    record = {
        "question_id": "tc_33",
        "question": "Which Lloyd Webber musical premiered in the US on 10th December 1993? ",
        "answer": {
            "value": "Sunset Boulevard",
            "normalized_value": "sunset boulevard",
            "aliases": ["Sunset Blvd", "Sunset Boulevard", "West Sunset Boulevard"],
            "normalized_aliases": ["sunset boulevard", "sunset blvd", "west sunset boulevard"],
        },
    }
    calls = []

    def load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        other = {"question_id": "tc_34", "question": "Which planet is known as the Red Planet?",
                 "answer": {"value": "Mars", "aliases": ["Mars"], "normalized_aliases": ["mars"]}}  # fmt: skip
        return [record, other]

    monkeypatch.setitem(sys.modules, "datasets", SimpleNamespace(load_dataset=load_dataset))
    [item] = load_triviaqa(n=1)
    assert calls == [(("trivia_qa", "rc.nocontext"), {"split": "validation"})]
    assert item.id == "triviaqa/tc_33" and item.family == "triviaqa"
    assert item.question == "Which Lloyd Webber musical premiered in the US on 10th December 1993?"
    assert item.answer == "Sunset Boulevard"
    assert item.aliases == (
        "Sunset Blvd",
        "West Sunset Boulevard",
        "sunset boulevard",
        "sunset blvd",
        "west sunset boulevard",
    )
    assert matches(" Sunset Blvd.", item) and not matches(" Cats", item)
    assert len(load_triviaqa()) == 2
    pool = load_triviaqa()
    assert few_shot_prompt(pool[0], 1, pool=pool) == (
        "Q: Which planet is known as the Red Planet?\nA: Mars\n\nQ: " + item.question + "\nA:"
    )
    with pytest.raises(ValueError, match="no statement template"):
        counterfactual_item(pool[0], 0, pool=pool)
