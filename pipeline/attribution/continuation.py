"""Step 4: continuation finetunes. The base adapter is trained further on k selected pool examples
and scored on the evaluation set, once per run:

  top     the examples at attribution ranks [rank_from, rank_from + k), one run per training seed
          (the seed orders the data);
  random  k examples drawn without replacement from ranks >= random_from, one draw per subset
          (subset r trains with train_seeds[r % len(train_seeds)]).

Ranks come from the candidate pool only (overlap: false, examples the base adapter never saw) or
from the base and candidate pools together (overlap: true). Every run trains exactly k examples
for the same number of steps. Each run is checkpointed; an interrupted node resumes."""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline.attribution.config import ContinuationConfig as Config
from pipeline.attribution.config import FinetuneConfig, GameConfig, ScoresConfig

PACKAGES = ("peft",)


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"pool": ("pipeline.attribution.pool", cfg.upstream(GameConfig)),
            "finetune": ("pipeline.attribution.finetune", cfg.upstream(FinetuneConfig)),
            "scores": ("pipeline.attribution.scores", cfg.upstream(ScoresConfig))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def subsets(cfg: Config, order: np.ndarray) -> list[np.ndarray]:
    """The training subset of every run (example indices), each of exactly k examples."""
    if cfg.arm == "top":
        window = order[cfg.rank_from: cfg.rank_from + cfg.k]
        if len(window) < cfg.k:
            raise ValueError(f"ranks {cfg.rank_from}..{cfg.rank_from + cfg.k - 1} do not exist: the selectable "
                             f"pool has {len(order)} examples")
        return [window for _ in cfg.train_seeds]
    eligible = order[cfg.random_from:]
    if len(eligible) < cfg.k:
        raise ValueError(f"cannot draw {cfg.k} examples from the {len(eligible)} at ranks >= {cfg.random_from}")
    return [np.sort(np.random.default_rng([cfg.seed, r, 7]).choice(eligible, size=cfg.k, replace=False))
            for r in range(cfg.n_subsets)]


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.attribution.estimates import arm_gain, arm_success, composition
    from pipeline.attribution.lora import adapter
    from pipeline.attribution.scores import ranking
    from pipeline.attribution.study import Study, lora_spec
    from pipeline.attribution.trainer import Schedule, evaluate, train

    cfg = Config(**config)
    study, state = Study.from_finetune(ctx, cfg)
    order = ranking(ctx.upstream("scores").result.values, study.examples, cfg.overlap)
    ev = study.where("eval")
    chosen = subsets(cfg, order)
    ckpt = ctx.checkpoint("runs")
    runs = []
    for spec, subset in ctx.progress(list(zip(cfg.runs(), chosen, strict=True)), desc=f"continuation {cfg.arm}"):
        key = str(spec["run"])
        if key not in ckpt:
            study.seconds.clear()
            with adapter(study.lm, lora_spec(cfg), state=state) as model:
                with study.timed("finetune"):
                    losses = train(study.lm, model, study.residuals, study.encoded, subset,
                                   Schedule(cfg.continuation_lr, cfg.continuation_epochs, cfg.batch_size,
                                            spec["train_seed"]))
                with study.timed("evaluate"):
                    scores = evaluate(study.lm, study.residuals, study.encoded, ev, cfg.eval_batch_size)
            rows = [study.examples[i] for i in subset]
            ckpt[key] = {**spec, "ids": [r["id"] for r in rows], "n_train": len(rows), "steps": len(losses),
                         "final_loss": losses[-1], "composition": composition(rows),
                         "success": scores.success.astype(int).tolist(), "nll": round(float(scores.nll.mean()), 4),
                         "seconds": dict(study.seconds)}
        runs.append(ckpt[key])
    matrix = np.array([r["success"] for r in runs], dtype=float)  # (runs, eval items)
    rates = matrix.mean(axis=1)
    base = np.array(ctx.upstream("finetune").result.values["eval_success"], dtype=float)[None]
    kw = {"level": cfg.level, "seed": cfg.seed}
    return Result(
        estimates={"success": arm_success(matrix, study.entities(ev), **kw),
                   "gain_over_base": arm_gain(matrix, base, study.entities(ev), **kw)},
        values={"base_success": float(base.mean()), "arm": cfg.arm, "k": cfg.k, "overlap": cfg.overlap,
                "n_runs": len(runs), "n_eval": len(ev),
                "run_success": [round(float(x), 4) for x in rates], "success_matrix": [r["success"] for r in runs],
                "eval_entities": study.entities(ev), "n_selectable": len(order),
                "composition": {v: round(float(np.mean([r["composition"][v] for r in runs])), 4)
                                for v in runs[0]["composition"]},
                "runs": [{k: v for k, v in r.items() if k != "success"} for r in runs]},
    )
