"""The control for a direction: random directions at the same site (DiffMean: the chosen layer's
residual stream; ITI: the same heads), one draw per seed, each a random unit vector scaled like the
real one (by the std of the training activations projected onto it), then sized:

  kl     the multiplier at which the random direction moves the model's next-token distributions as
         much as the real direction does at its chosen strength (the mean KL divergence from the
         unsteered distributions over calibration prompts of the selection split, matched): the
         same downstream size, the control the verdict rests on. The calibration tries 1/8x to 8x
         the real strength, then doubles (or halves) per draw until the target KL is bracketed
         (to 512x); a draw never bracketed keeps the nearest end and is counted in
         `seeds_unbracketed`, and the measured KL each draw reaches is the balance the engine checks;
  sigma  (with `sigma: true` only) the real direction's strength itself (the same size in
         activation units, which can be a far smaller or larger push downstream).

Each is scored on compliance on the same evaluation items as the real direction (whose unsteered
generations it shares). The control statistic is the real effect's rank among the seeds' effects
by size: p = (1 + #{seeds at least as large, or breaking the answers}) / (1 + seeds); a seed that
breaks the answers (too few parse) counts as at least as large, never dropped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from claims import Result
from pipeline import stats
from pipeline.steering.config import (
    DirectionRandomConfig,
    DirectionSweepConfig,
    TasksConfig,
    detection,
    detection_split,
)
from pipeline.steering.evaluate import TaskSet
from pipeline.steering.neurons import setup, sweep_sets
from pipeline.steering.summary import MIN_PARSED, item_rows, matrix, records_from_items


class Config(DirectionRandomConfig):
    sigma: bool = Field(False, description="Also score every draw at the real strength in activation units (the "
                        "size the second round reported beside the KL-matched one). Off since the third round: the "
                        "verdict rests on the KL-matched size, and the second size doubled the control's cost.")


CALIBRATION_MULTIPLIERS = 2.0 ** np.arange(-3, 4)  # times the real strength
CALIBRATION_CHUNK = 4  # draws calibrated together (their multipliers share passes), then checkpointed
MAX_DOUBLINGS = 6  # further multipliers tried, per draw, when the first ones do not bracket the target KL (to 512x)
REFINE_STEPS = 2  # then the KL measured at the interpolated multiplier and the interpolation redone, twice


def requires(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.hneurons.config import SampleConfig

    cfg = Config(**config)
    tasks = cfg.upstream(TasksConfig)
    sweep_cfg = DirectionSweepConfig(**{k: v for k, v in cfg.model_dump().items() if k in DirectionSweepConfig.model_fields})
    return {"tasks": ("pipeline.steering.tasks", tasks), "known": ("pipeline.steering.known", tasks),
            "directions": ("pipeline.steering.directions", {"profile": cfg.profile, "seed": cfg.seed,
                                                            "n_heads": cfg.n_heads}),
            "sweep": ("pipeline.steering.direction_sweep", {**sweep_cfg.model_dump(mode="json"), "externality": True}),
            "labels": ("pipeline.hneurons.sample", detection(cfg.profile, cfg.seed).upstream(SampleConfig)),
            "split": ("pipeline.hneurons.split", detection_split(cfg.profile, cfg.seed).model_dump(mode="json"))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint
    from pipeline.steering.judges import judges_in_use

    return {"model": fingerprint(config["profile"]), "judges": judges_in_use()}


def random_scaled(acts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random unit direction per site, times the std of the activations projected onto it.
    acts: (n_train, sites, dim) -> (sites, dim)."""
    units = rng.normal(size=acts.shape[1:])
    units /= np.linalg.norm(units, axis=-1, keepdims=True)
    sigma = np.einsum("nsd,sd->ns", acts, units).std(axis=0)  # (sites,)
    return units * sigma[:, None]


def mean_kl(lm: Any, prompts: list[str], sets: Any, rows_per_pass: int = 128) -> np.ndarray:
    """Mean KL(set 0 || set k) of the next-token distribution at each prompt's end, over the prompts,
    for k = 1 .. len(sets) - 1 (set 0: unsteered): rows = sets x prompts, the layers below the
    steered one run once per pass (pipeline.interventions.decoder.next_token_logits)."""
    import torch

    from pipeline.interventions.decoder import next_token_logits

    per_pass = max(2, rows_per_pass // len(prompts))
    base, kls = None, []
    for g in range(0, len(sets), per_pass):
        logits = next_token_logits(lm, prompts, sets.subset(list(range(g, min(g + per_pass, len(sets))))))
        logp = torch.log_softmax(logits.float(), dim=-1)  # (sets, prompts, V)
        if base is None:
            base, logp = logp[:1], logp[1:]
        kls.append((base.exp() * (base - logp)).sum(-1))  # (sets, prompts)
    return torch.cat(kls).T.contiguous().mean(0).numpy()  # prompts x sets, averaged over the prompts


def matched_multiplier(kl: np.ndarray, multipliers: np.ndarray, target: float) -> float:
    """The multiplier whose KL is `target`, by linear interpolation of log KL against log multiplier
    between the first two neighbouring multipliers (by size) whose KLs bracket it; at the nearer end
    of the calibration when none do (`bracketed` says whether any do)."""
    m, k = np.abs(np.asarray(multipliers, dtype=float)), np.maximum(np.asarray(kl, dtype=float), 1e-12)
    order = np.argsort(m)
    logm, logk, logt = np.log(m[order]), np.log(k[order]), np.log(target)
    sign = float(np.sign(np.asarray(multipliers)[0]))
    for i in range(len(logm) - 1):
        lo, hi = sorted((logk[i], logk[i + 1]))
        if lo <= logt <= hi:
            frac = 0.0 if hi == lo else (logt - logk[i]) / (logk[i + 1] - logk[i])
            return sign * float(np.exp(logm[i] + frac * (logm[i + 1] - logm[i])))
    return sign * float(np.exp(logm[-1] if logt > logk[-1] else logm[0]))


def bracketed(kl: list[float], target: float) -> bool:
    return bool(min(kl) <= target <= max(kl))


def calibrate(measure: Any, seeds: list[int], target: float) -> dict[int, dict[str, Any]]:
    """Each seed's KL curve over CALIBRATION_MULTIPLIERS, then, for seeds whose curve does not
    bracket the target KL, one more multiplier per round (twice the largest when the curve stays
    below the target, half the smallest when above) until it does or MAX_DOUBLINGS rounds have run;
    then REFINE_STEPS rounds measure each bracketed curve at its interpolated multiplier (a secant
    step on log scales), so the matched multiplier hits the target more closely than one
    interpolation across a factor of two.
    measure(pairs) -> the KL of each (seed, multiplier) pair, measured in one batch."""
    curves = {s: dict(zip(CALIBRATION_MULTIPLIERS.tolist(), kl, strict=True)) for s, kl in zip(
        seeds, np.asarray(measure([(s, m) for s in seeds for m in CALIBRATION_MULTIPLIERS])).reshape(
            len(seeds), len(CALIBRATION_MULTIPLIERS)), strict=True)}
    for _ in range(MAX_DOUBLINGS):
        open_ = [s for s in seeds if not bracketed(list(curves[s].values()), target)]
        if not open_:
            break
        nxt = [(s, 2 * max(curves[s]) if max(curves[s].values()) < target else min(curves[s]) / 2) for s in open_]
        for (s, m), kl in zip(nxt, measure(nxt), strict=True):
            curves[s][m] = float(kl)
    for _ in range(REFINE_STEPS):  # the KL at each bracketed draw's interpolated multiplier, added to its curve
        done = [s for s in seeds if bracketed(list(curves[s].values()), target)]
        at = [(s, matched_multiplier(np.array(list(curves[s].values())), np.array(list(curves[s])), target))
              for s in done]
        at = [(s, m) for s, m in at if m not in curves[s]]
        if at:
            for (s, m), kl in zip(at, measure(at), strict=True):
                curves[s][m] = float(kl)
    out = {}
    for s in seeds:
        mults, kls = zip(*sorted(curves[s].items()), strict=True)
        out[s] = {"multipliers": list(mults), "kl": [float(k) for k in kls], "bracketed": bracketed(kls, target),
                  "multiplier": matched_multiplier(np.array(kls), np.array(mults), target)}
    return out


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.interventions.sets import DirectionSets, HeadSets
    from pipeline.steering.capture import answer_activations

    cfg = Config(**config)
    lm, taskset = setup(cfg, ctx, ("compliance",))
    up = ctx.upstream("directions")
    arrays, meta = up.arrays("directions"), up.result.values
    sweep_values = ctx.upstream("sweep").result.values
    layer, strength = sweep_values["chosen_layer"], sweep_values["chosen_strength"]
    # the sites' training activations (for scaling random directions like the real ones)
    rows = {q["id"]: q for q in ctx.upstream("labels").json("labels")}
    train_ids = ctx.upstream("split").result.values["splits"][0]["train"]
    acts = answer_activations(lm, rows, train_ids, 16, ctx.checkpoint("train-activations"), ctx.progress)
    if cfg.method == "diffmean":
        sites = acts["resid"][:, [layer]]  # (n, 1, D)
    else:
        heads = acts["heads"].reshape(len(train_ids), lm.n_layers, lm.n_heads, lm.head_dim)
        sites = np.stack([heads[:, h["layer"], h["head"]] for h in meta["iti_heads"]], axis=1)  # (n, K, hd)

    def family(vectors: list[np.ndarray], strengths: list[float]) -> Any:  # one set per (sites, dim) array
        if cfg.method == "diffmean":
            return DirectionSets([layer] * len(vectors), [v[0] for v in vectors], strengths)
        return HeadSets([_shifts(meta, v, None) for v in vectors], strengths)

    def calibrating(vectors: list[np.ndarray], multipliers: list[float]) -> Any:
        """Unsteered (multiplier 0), then each vector at its multiplier, all at the real strength."""
        scaled = [0.0 * vectors[0]] + [m * v for v, m in zip(vectors, multipliers, strict=True)]
        return family(scaled, [strength] * len(scaled))

    select = TaskSet(ctx, "select", ("compliance",), cfg.n_shots, cfg.seed)
    calibration = select.prompts["compliance"][: cfg.n_calibration]
    real_vectors = arrays["diffmean"][[layer]] if cfg.method == "diffmean" else arrays["iti"]
    target_kl = float(mean_kl(lm, calibration, calibrating([real_vectors], [1.0]))[0])
    sweep_rows = ctx.upstream("sweep").json("generations")["rows"]["compliance"]
    if [r["item"]["id"] for r in sweep_rows] != [r["item"]["id"] for r in taskset.rows["compliance"]]:
        raise RuntimeError("the direction sweep was scored on other compliance items")
    real_effect = ctx.upstream("sweep").result.estimates["compliance_effect_pp"].value
    ckpt = ctx.checkpoint("calibration")
    draws = [random_scaled(sites, np.random.default_rng([cfg.seed, 2000 + s])) for s in range(cfg.seeds)]
    todo = [s for s in range(cfg.seeds) if s not in ckpt]
    chunks = [todo[i: i + CALIBRATION_CHUNK] for i in range(0, len(todo), CALIBRATION_CHUNK)]
    def measure(pairs: list[tuple[int, float]]) -> np.ndarray:
        return mean_kl(lm, calibration, calibrating([draws[s] for s, _ in pairs], [m for _, m in pairs]))

    for chunk in ctx.progress(chunks, total=len(chunks), desc=f"calibrating random {cfg.method} directions"):
        for s, curve in calibrate(measure, chunk, target_kl).items():
            ckpt[s] = curve
    # every seed at each size (KL-matched, then with `sigma` the real strength) is one set; they
    # share generation passes (rows = set x item)
    sizes = sizes_of(cfg)
    pairs = [(s, k) for s in range(cfg.seeds) for k in range(len(sizes))]
    strengths = [strength * ckpt[s]["multiplier"] if sizes[k] == "kl" else strength for s, k in pairs]
    records = sweep_sets(ctx, cfg, lm, taskset, family([draws[s] for s, _ in pairs], strengths),
                         [(f"seed{s}", k) for s, k in pairs], f"random {cfg.method} directions")
    # the KL each draw reaches at its matched multiplier, measured (not interpolated): the balance
    kl_ckpt = ctx.checkpoint("kl-reached")
    if "all" not in kl_ckpt:
        kl_ckpt["all"] = mean_kl(lm, calibration, family([0.0 * draws[0]] + draws, [0.0] + [
            strength * ckpt[s]["multiplier"] for s in range(cfg.seeds)])).tolist()
    kl_reached = np.asarray(kl_ckpt["all"])
    neutral_record = ctx.upstream("sweep").json("generations")["records"][0]
    ctx.save_items("outcomes", item_rows(
        [{"set": "neutral", "size": "none"}] + [{"set": f"seed {s}", "size": sizes[k]} for s, k in pairs],
        [{"compliance": neutral_record["compliance"]}] + records, {"compliance": taskset.rows["compliance"]}))
    estimates, values = estimates_of(cfg, ctx.item_rows["outcomes"], real_effect)
    values.update({"method": f"random {cfg.method} directions", "strength": strength, "layer": layer,
                   "target_kl": target_kl, "kl_reached": kl_reached.tolist(), "sided": "one",
                   "balance": {"kl": float(np.mean(np.log(np.maximum(kl_reached, 1e-12)) - np.log(target_kl)))},
                   "multipliers": [ckpt[s]["multiplier"] for s in range(cfg.seeds)],
                   "calibration": [{k: ckpt[s][k] for k in ("multipliers", "kl", "bracketed")}
                                   for s in range(cfg.seeds)],
                   "seeds_unbracketed": sum(not ckpt[s]["bracketed"] for s in range(cfg.seeds))})
    return Result(estimates=estimates, values=values)


def sizes_of(cfg: Config) -> tuple[str, ...]:
    return ("kl", "sigma") if cfg.sigma else ("kl",)


def estimates_of(cfg: Config, items: list[dict[str, Any]], real_effect: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The seeds' effects at each size (KL-matched; with `sigma`, the real strength), the real effect's rank among
    them by absolute size (one-sided on |effect|), and the seeds' mean effect with an interval over
    seeds and subject clusters, all from the per-item outcomes."""
    settings, records, clusters = records_from_items(items, ("set", "size"))
    by = dict(zip(settings, records, strict=True))
    neutral = matrix([by[("neutral", "none")]], "compliance")[:, 0]
    clusters_c = clusters["compliance"]
    values: dict[str, Any] = {"seeds": cfg.seeds, "real_effect_pp": real_effect, "n_items": int(len(neutral))}
    estimates = {}
    for scale in sizes_of(cfg):
        cols = np.stack([matrix([by[(f"seed {s}", scale)]], "compliance")[:, 0] for s in range(cfg.seeds)])
        parsed = (~np.isnan(cols)).sum(axis=1)
        effects = [float(100 * (np.nanmean(c) - np.nanmean(neutral))) if n >= MIN_PARSED else None
                   for c, n in zip(cols, parsed, strict=True)]
        broken = [e is None for e in effects]
        as_large = [b or abs(e) >= abs(real_effect) for e, b in zip(effects, broken, strict=True)]
        valid = [e for e in effects if e is not None]
        ok = [k for k, b in enumerate(broken) if not b]

        def mean_effect(seeds: np.ndarray, items: np.ndarray, cols: np.ndarray = cols, ok: list[int] = ok) -> float:
            chosen = [k for k in seeds if k in ok]
            if not chosen:
                return float("nan")
            return float(np.mean([100 * (np.nanmean(cols[k, items]) - np.nanmean(neutral[items])) for k in chosen]))

        est = stats.seed_cluster_bootstrap(mean_effect, cfg.seeds, clusters_c, level=cfg.level, seed=cfg.seed,
                                           n_resamples=400) if ok else None
        if est is not None:
            estimates[f"compliance_effect_pp_{scale}"] = est
        values.update({f"seed_effects_pp_{scale}": effects, f"seeds_broken_{scale}": int(sum(broken)),
                       f"seed_effect_min_{scale}": min(valid, default=None),
                       f"seed_effect_max_{scale}": max(valid, default=None),
                       f"seeds_as_large_{scale}": int(sum(as_large)),
                       f"rank_p_{scale}": float((1 + sum(as_large)) / (1 + cfg.seeds)),
                       f"seed_parsed_{scale}": parsed.tolist()})
    return estimates, values


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The control's estimates from its committed per-item outcomes (the estimates do not depend on
    the real effect, which only enters the rank)."""
    return estimates_of(Config(**config), items["outcomes"], 0.0)[0]


def _shifts(meta: dict[str, Any], vectors: np.ndarray, m: np.ndarray | None) -> dict[int, dict[int, np.ndarray]]:
    """The ITI heads' shifts {layer: {head: vector}}; with multipliers m, one row per multiplier."""
    out: dict[int, dict[int, np.ndarray]] = {}
    for head, v in zip(meta["iti_heads"], vectors, strict=True):
        out.setdefault(head["layer"], {})[head["head"]] = v if m is None else np.outer(m, v)
    return out
