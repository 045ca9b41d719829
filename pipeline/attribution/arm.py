"""Step 5: one arm of a selection comparison. Each run finetunes an adapter on k pool examples and
scores it on the evaluation set; where the finetune starts is the design:

  start: base      a fresh adapter on the shipped model, trained with the base finetune's learning
                   rate and epochs (the seed's design: "finetune from the base model on top-k");
                   the training seed sets the adapter's initialisation and the data order
  start: adapter   the base adapter trained further (continuation_lr, continuation_epochs): the
                   continuation design, a second reading

and which k examples is the arm (pipeline/attribution/subsets.py):

  top          ranks [rank_from, rank_from + k) of the chosen reading, one run per training seed
  random       k drawn from ranks >= random_from, one draw per subset (subset r trains with
               train_seeds[r % len]); matched: within strata (variant x family x length bin), as
               many from each as the top window holds, or (loss_pool n) each top example replaced
               by one of the n of its variant and family nearest in the base adapter's loss and
               length; reports `balance` and `overlap_with_top`
  format, shortest, longest, lowest_loss, format_loss, format_base_loss
               trivial filters at the same k, one run per training seed

Ranks come from the candidate pool (overlap: false, examples the base adapter never saw) or from
the base and candidate pools together (overlap: true). Every run trains exactly k examples for the
same number of steps. The per-item outcomes (run x evaluation item, and the start's own outcomes
as run -1) are committed, and `recompute` rebuilds the estimates from them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline.attribution.config import ArmConfig as Config
from pipeline.attribution.config import FinetuneConfig, GameConfig, ReadingsConfig, ScoresConfig

PACKAGES = ("peft",)


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    edges = {"pool": ("pipeline.attribution.pool", cfg.upstream(GameConfig)),
             "finetune": ("pipeline.attribution.finetune", cfg.upstream(FinetuneConfig)),
             "scores": ("pipeline.attribution.scores", cfg.upstream(ScoresConfig)),
             "losses": ("pipeline.attribution.pool_losses", cfg.upstream(FinetuneConfig))}
    if cfg.reading == "chosen":
        edges["readings"] = ("pipeline.attribution.readings", cfg.upstream(ReadingsConfig))
    return edges


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def gain_name(start: str) -> str:
    """The estimate of the arm against where its finetunes start."""
    return "gain_over_base" if start == "adapter" else "gain_over_zero_shot"


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The arm's estimates from its per-item rows: success over runs and items, and the paired gain
    over the start (run -1: the base adapter, or the shipped model)."""
    from pipeline.attribution.estimates import arm_gain, arm_success

    cfg = Config(**config)
    matrix, reference, entities = outcome_matrix(items["outcomes"])
    kw = {"level": cfg.level, "seed": cfg.seed}
    return {"success": arm_success(matrix, entities, **kw),
            gain_name(cfg.start): arm_gain(matrix, reference[None], entities, **kw)}


def outcome_matrix(rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(runs x items) success of the runs, the start's (items,), and the items' entities."""
    items = [r["item"] for r in rows if r["run"] == -1]
    entities = [r["entity"] for r in rows if r["run"] == -1]
    column = {item: j for j, item in enumerate(items)}
    runs = sorted({r["run"] for r in rows if r["run"] >= 0})
    matrix = np.full((len(runs), len(items)), np.nan)
    reference = np.full(len(items), np.nan)
    for r in rows:
        if r["run"] == -1:
            reference[column[r["item"]]] = r["success"]
        else:
            matrix[runs.index(r["run"]), column[r["item"]]] = r["success"]
    if np.isnan(matrix).any() or np.isnan(reference).any():
        raise ValueError("the outcome rows do not cover every run and item")
    return matrix, reference, entities


def item_rows(study: Any, ev: np.ndarray, runs: list[dict[str, Any]], reference: np.ndarray) -> list[dict[str, Any]]:
    rows = [{"run": -1, "train_seed": -1, "subset": -1, "item": study.examples[i]["id"],
             "entity": study.examples[i]["entity"], "success": int(s)} for i, s in zip(ev, reference, strict=True)]
    for run in runs:
        rows += [{"run": run["run"], "train_seed": run["train_seed"], "subset": run["subset"],
                  "item": study.examples[i]["id"], "entity": study.examples[i]["entity"], "success": int(s)}
                 for i, s in zip(ev, run["success"], strict=True)]
    return rows


def selection(cfg: Config, study: Any, ctx: Any) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The training subset of every run, and what the arm reports about them."""
    from pipeline.attribution import subsets
    from pipeline.attribution.pool_losses import per_example
    from pipeline.attribution.readings import chosen
    from pipeline.attribution.scores import ranking

    reading = chosen(ctx, cfg.reading)
    order = ranking(ctx.upstream("scores").result.values, study.examples, cfg.overlap, reading)
    lengths = np.array([len(ids) for ids in study.encoded.ids])
    pool_losses = ctx.upstream("losses").result.values
    loss = per_example(pool_losses, len(study.examples), "loss_shipped")
    base_loss = per_example(pool_losses, len(study.examples), "loss_base")
    target = subsets.top_window(order, cfg.k, cfg.rank_from)
    info: dict[str, Any] = {"reading": reading, "n_selectable": len(order)}
    if cfg.arm == "top":
        chosen_sets = [target for _ in cfg.train_seeds]
    elif cfg.arm == "random":
        chosen_sets, drawn = random_sets(cfg, study.examples, lengths, order, loss, base_loss)
        info.update(drawn)
    else:
        chosen_sets = [subsets.filtered(cfg.arm, order, cfg.k, study.examples, lengths, loss, cfg.seed, base_loss)
                       for _ in cfg.train_seeds]
        info["filter_overlap_with_top"] = round(len(np.intersect1d(chosen_sets[0], target)) / cfg.k, 4)
    info["target_composition"] = subsets_composition(study, target)
    return chosen_sets, info


def random_sets(cfg: Config, examples: list[dict[str, Any]], lengths: np.ndarray, order: np.ndarray,
                loss: np.ndarray, base_loss: np.ndarray) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The random arm's subsets (matched to the top window as `cfg` says) and what it reports about
    them: balance, overlap with the top window, borrowing. No model: scripts/attribution_draw_design.py
    calls it to print the balance of a design before any finetune."""
    from pipeline.attribution import subsets

    target = subsets.top_window(order, cfg.k, cfg.rank_from)
    keys = subsets.strata(examples, lengths, order, cfg.length_bins)
    near = None
    if cfg.loss_pool:
        keys = {i: key[:2] for i, key in keys.items()}  # (variant, family); loss and length by distance
        near = np.stack([base_loss / np.std(base_loss[order]), lengths / np.std(lengths[order])], axis=1)
    draws = subsets.random_draws(order, cfg.k, cfg.rank_from, cfg.random_from, cfg.n_subsets, cfg.seed,
                                 matched=cfg.matched, keys=keys, value=near, pool=cfg.loss_pool)
    chosen_sets = [d for d, _ in draws]
    cov = subsets.covariates(examples, lengths, loss, base_loss)
    matched_on = (["variant", "family", f"base adapter's loss and length (nearest {cfg.loss_pool})"]
                  if cfg.loss_pool else ["variant", "family", f"length ({cfg.length_bins} bins)"])
    from pipeline.attribution.comparison import MATCHED

    covariates = [*MATCHED, "base_loss"] if cfg.loss_pool else list(MATCHED)
    return chosen_sets, {"balance": subsets.balance(target, chosen_sets, cov),
                         "matched_covariates": covariates if cfg.matched else [],
                         "overlap_with_top": subsets.overlap(target, chosen_sets), "borrowed": [b for _, b in draws],
                         "matched": cfg.matched, "matched_on": matched_on if cfg.matched else [],
                         "n_strata": len(set(keys.values()))}


def subsets_composition(study: Any, indices: np.ndarray) -> dict[str, float]:
    from pipeline.attribution.estimates import composition

    return composition([study.examples[i] for i in indices])


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.attribution.estimates import mde
    from pipeline.attribution.runs import Job, finetune_jobs
    from pipeline.attribution.study import Study, lora_spec

    cfg = Config(**config)
    study, state = Study.from_finetune(ctx, cfg)
    ev = study.where("eval")
    chosen_sets, info = selection(cfg, study, ctx)
    lr, epochs = cfg.schedule()
    jobs = [Job(str(spec["run"]), subset, spec["train_seed"], lr, epochs,
                state if cfg.start == "adapter" else spec["train_seed"], spec)
            for spec, subset in zip(cfg.runs(), chosen_sets, strict=True)]
    runs = finetune_jobs(study, lora_spec(cfg), jobs, ev, ctx.checkpoint("runs"), batch_size=cfg.batch_size,
                         eval_batch_size=cfg.eval_batch_size, parallel=cfg.parallel_adapters,
                         progress=ctx.progress, desc=f"{cfg.arm} arm from {cfg.start}")
    tuned = ctx.upstream("finetune").result.values
    reference = np.array(tuned["eval_success" if cfg.start == "adapter" else "eval_success_zero_shot"], dtype=int)
    ctx.save_items("outcomes", item_rows(study, ev, runs, reference))
    estimates = recompute(ctx.item_rows, config)
    rates = np.array([np.mean(r["success"]) for r in runs])
    gain = estimates[gain_name(cfg.start)]
    return Result(estimates=estimates, values={
        f"{gain_name(cfg.start)}_mde": mde(gain),
        "steps": runs[0]["steps"], "epochs": epochs, "lr": lr,
        **info, "start": cfg.start, "start_success": float(reference.mean()),
        **({"base_success": float(reference.mean())} if cfg.start == "adapter" else {}),
        "arm": cfg.arm, "k": cfg.k, "overlap": cfg.overlap, "n_runs": len(runs), "n_eval": len(ev),
        "run_success": [round(float(x), 4) for x in rates], "success_matrix": [r["success"] for r in runs],
        "eval_entities": study.entities(ev),
        "composition": {v: round(float(np.mean([r["composition"][v] for r in runs])), 4) for v in runs[0]["composition"]},
        "runs": [{k: v for k, v in r.items() if k != "success"} for r in runs]})
