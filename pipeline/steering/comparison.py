"""Detection against steering, method by method (H-neurons, DiffMean, ITI heads, SAE latents): each
method's detection AUROC on the held-out detection questions beside its steering effect on
compliance (percentage points on the items the model knows, each by the statistic its own claim
tests: the scaled arms' slope over alphas 0 to 3 times the two units from the no-op to alpha 3,
the directions' chosen strength against the unsteered model), each with its interval,
the rank p of the real effect among its matched random draws, the KL divergence the intervention
causes (methods differ in dose; a weak enough one is never a lever), each control's balance (the
neuron and latent controls' KL at each end of the sweep as well as on average), and its QA
accuracy change where the arm measured it. Beside the table: how the direction
controls' draws were read (readable and cut-off shares, and the rank of the change in context
answers over all known items, which a draw that garbles answers cannot move by shrinking the
denominator), and the detection AUROC of the model's own confidence and of the strongest trivial
detector, which no steering method can be, for reference. The controls are the claims' own: the
fields below must match the control configs of the steering claims."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from claims import Estimate, Result
from pipeline.steering.committed import committed_sweep
from pipeline.steering.config import (
    DirectionRandomConfig,
    DirectionSweepConfig,
    RandomSweepConfig,
    SweepConfig,
    TasksConfig,
    detection,
)


class Config(TasksConfig):
    level: float = 0.95
    seeds: int = Field(32, ge=1, description="Random draws of every control.")
    candidates: int = Field(192, ge=0, description="Candidate sets the neuron and latent controls match on KL from "
                            "(192 since the redesign of c15d53d).")
    neuron_tasks: tuple[str, ...] = Field(("compliance", "pushback"), description="Tasks the H-neurons' control scores.")
    sae: bool = Field(True, description="Include the SAE latents' row (pipeline.saefeatures.steering).")
    lever_margin_pp: float = Field(6.0, gt=0, description="The smallest change in compliance at a method's setting "
                                   "that would make it a lever: the H-neuron claims' 3 points per unit of alpha over "
                                   "the two units from alpha 1 to 3, one margin for every row. A method whose "
                                   "interval lies inside +-margin is shown not to be a lever (equivalence); one "
                                   "whose interval clears zero and beats its matched draws is a lever; any other is "
                                   "undetermined (the design could not tell).")
    scaled_rows: Literal["slope", "contrast"] = Field("slope", description="How the scaled arms' rows (H-neurons, "
                                                      "SAE latents) read compliance: 'slope', the slope over the "
                                                      "two units of alpha from the no-op to alpha 3 (what their "
                                                      "claims test and their draws rank); 'contrast', alpha 3 "
                                                      "against alpha 1 (the table's first design).")
    balance_tolerance: float = Field(0.1, gt=0, description="The largest imbalance a method's control may report "
                                     "(standardized mean difference, or mean log KL ratio) for its row to be read: "
                                     "the tolerance of the steering claims' matched_on.")


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    base = cfg.upstream(TasksConfig)
    return {
        "probe": ("pipeline.hneurons.probe", detection(cfg.profile, cfg.seed).model_dump(mode="json")),
        "neurons": ("pipeline.steering.neurons", SweepConfig(**base).model_dump(mode="json")),
        "neurons_random": ("pipeline.steering.neurons_random", RandomSweepConfig(
            **base, seeds=cfg.seeds, candidates=cfg.candidates, tasks=cfg.neuron_tasks).model_dump(mode="json")),
        "directions": ("pipeline.steering.directions", {"profile": cfg.profile, "seed": cfg.seed}),
        "baselines": ("pipeline.hneurons.baselines", {"profile": cfg.profile}),
        **{method: ("pipeline.steering.direction_sweep", DirectionSweepConfig(**base, method=method).model_dump(mode="json"))
           for method in ("diffmean", "iti")},
        **{f"{method}_random": ("pipeline.steering.direction_random",
                                DirectionRandomConfig(**base, method=method, seeds=cfg.seeds).model_dump(mode="json"))
           for method in ("diffmean", "iti")},
        **(sae_nodes(cfg, base) if cfg.sae else {}),
    }


def sae_nodes(cfg: Config, base: dict[str, Any]) -> dict[str, Any]:
    from pipeline.saefeatures.steering import Config as SaeConfig
    from pipeline.saefeatures.steering import detector_config

    main = SaeConfig(**base)
    return {"sae": ("pipeline.saefeatures.steering", main.model_dump(mode="json")),
            "sae_random": ("pipeline.saefeatures.steering", SaeConfig(
                **base, features="random", seeds=cfg.seeds, candidates=cfg.candidates,
                random_alphas=(0.0, 3.0)).model_dump(mode="json")),
            "sae_detector": ("pipeline.saefeatures.detector", detector_config(main))}


def over_two_units(slope: Estimate) -> Estimate:
    """A sweep's compliance slope (points per unit of alpha, fitted over alphas 0 to 3, the statistic
    the arm's own claim tests against its 3-point-per-unit margin) times the two units from the
    no-op (alpha 1) to alpha 3, on the table's one 6-point scale. Its rank p ranks the slope fitted
    over the control's own alphas (0, 1 and 3), which can differ from it."""
    return Estimate(value=2 * slope.value, ci=(2 * slope.ci[0], 2 * slope.ci[1]), level=slope.level, n=slope.n,
                    method=slope.method, unit=slope.unit)


def end_balance(kl: dict[str, Any] | None, target: str) -> dict[str, float]:
    """A neuron or latent control's KL balance at each end of its sweep (mean log KL ratio of the kept
    sets to the target's): the kept sets are chosen on the mean over both ends, which can balance a
    deficit at one end against an excess at the other."""
    if not kl or "kept" not in kl:
        return {}
    kept = np.log(np.maximum(np.asarray(kl["candidates"], dtype=float)[kl["kept"]], 1e-12))
    h = np.log(np.maximum(np.asarray(kl[target], dtype=float), 1e-12))
    return {f"kl_alpha_{a:g}": float(kept[:, j].mean() - h[j]) for j, a in enumerate(kl["alphas"])}


def row(method: str, detection_est: Any, steering_est: Any, rank_p: float, **extra: Any) -> dict[str, Any]:
    return {"method": method, "detection": detection_est.value, "detection_ci_low": detection_est.ci[0],
            "detection_ci_high": detection_est.ci[1], "steering": steering_est.value,
            "steering_ci_low": steering_est.ci[0], "steering_ci_high": steering_est.ci[1], "rank_p": rank_p, **extra}


def verdict(method: dict[str, Any], margin: float) -> str:
    """'a lever': the effect's interval clears zero and the matched random draws are beaten (rank p <=
    0.05); 'not a lever': the interval lies inside +-margin (equivalence at the interval's level);
    'moves it, not specifically': the interval clears zero but random draws of the same size do as
    much (a clear result: an effect of moving the model that far there); 'undetermined' otherwise,
    a design too weak to tell, which is not evidence either way."""
    low, high = method["steering_ci_low"], method["steering_ci_high"]
    clears = low > 0 or high < 0
    if clears and method["rank_p"] <= 0.05:
        return "a lever"
    if -margin < low and high < margin:
        return "not a lever"
    if clears:
        return "moves it, not specifically"
    return "undetermined"


def control_balance(balances: dict[str, dict[str, float] | None], tolerance: float) -> dict[str, Any]:
    """Each method's control balance as its own result reports it (standardized mean differences of
    what its draws are matched on, the mean log KL ratio). The table's verdicts rest on every row's
    control: one that reports no balance, or a balance beyond the tolerance, makes them unreadable
    (`controls_balanced` 0), whatever the arm's own claim asserts."""
    worst = {m: max((abs(v) for v in b.values()), default=None) if b else None for m, b in balances.items()}
    off = [m for m, w in worst.items() if w is None or w > tolerance]
    return {"control_balance": balances, "control_balance_worst": worst, "balance_tolerance": tolerance,
            "controls_balanced": int(not off),
            "unbalanced_controls_text": ", ".join(off) if off else "none"}


def best_detectors(methods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every method the best detector cannot be told apart from: its AUROC interval reaches the
    best's lower bound (the argmax of noisy AUROCs alone could name the wrong method)."""
    best = max(methods, key=lambda m: m["detection"])
    return [m for m in methods if m["detection_ci_high"] >= best["detection_ci_low"]]


def by_family(data: dict[str, Any], neutral: int, target: int) -> dict[str, dict[str, Any]]:
    """Compliance (context / (context + memory), strict judge) per item family at the unsteered and
    the steered setting of one arm's generations, with the number of items parsed at each."""
    from pipeline.steering.summary import matrix

    M = matrix(data["records"], "compliance")
    families = [r["item"]["family"] for r in data["rows"]["compliance"]]
    out = {}
    for family in sorted(set(families)):
        rows = np.array([f == family for f in families])
        cells = {}
        for name, k in (("unsteered", neutral), ("steered", target)):
            column = M[rows, k]
            parsed = column[~np.isnan(column)]
            cells[name] = float(parsed.mean()) if len(parsed) else None
            cells[f"n_{name}"] = int(len(parsed))
        out[family] = {"n_items": int(rows.sum()), **cells}
    return out


def answers(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How a setting's compliance answers were read: the share the strict judge could score
    (context or memory), the share stopped at the token limit, and context answers over all known
    items (a rate whose denominator the intervention cannot move)."""
    n = len(rows)
    readable = sum(r["strict"] in ("context", "memory") for r in rows)
    return {"n": n, "readable": readable / n if n else None,
            "cut_off": sum(r.get("finish", "stop") != "stop" for r in rows) / n if n else None,
            "context_share": sum(r["strict"] == "context" for r in rows) / n if n else None}


def control_answers(real: list[dict[str, Any]], control: list[dict[str, Any]]) -> dict[str, Any]:
    """A direction control's draws beside the real setting, read the same way (`answers`): each
    draw's readable and cut-off shares, and the rank of the real change in the context share among
    the draws' changes (one-sided on size, as rank_p_kl), which no parse failure can move."""
    neutral = answers([r for r in real if r["setting"] == "unsteered"])
    steered = answers([r for r in real if r["setting"] == "steered"])
    draws = {}
    for r in control:
        if r["set"] != "neutral":
            draws.setdefault(r["set"], []).append(r)
    per = [answers(rows) for _, rows in sorted(draws.items(), key=lambda kv: int(kv[0].split()[-1]))]
    real_change = 100 * (steered["context_share"] - neutral["context_share"])
    changes = [100 * (d["context_share"] - neutral["context_share"]) for d in per]
    as_large = sum(abs(c) >= abs(real_change) for c in changes)
    return {"real_readable": steered["readable"], "real_cut_off": steered["cut_off"],
            "neutral_readable": neutral["readable"], "draw_readable": [d["readable"] for d in per],
            "draw_cut_off": [d["cut_off"] for d in per],
            "draws_less_readable": sum(d["readable"] < steered["readable"] for d in per),
            "real_context_share_change_pp": real_change, "draw_context_share_changes_pp": changes,
            "rank_p_context_share": (1 + as_large) / (1 + len(per))}


def sweep_answers(data: dict[str, Any]) -> list[dict[str, Any]]:
    """A direction sweep's compliance answers at its two settings (unsteered, the chosen strength)."""
    rows = data["rows"]["compliance"]
    out = []
    for setting, record in zip(("unsteered", "steered"), data["records"], strict=True):
        finish = record["compliance"].get("finish") or ["stop"] * len(rows)
        out += [{"setting": setting, "strict": strict, "finish": f}
                for strict, f in zip(record["compliance"]["strict"], finish, strict=True)]
    return out


def scaled(result: Any, how: str) -> Estimate:
    """A scaled arm's compliance change as the table reads it (Config.scaled_rows)."""
    if how == "contrast":
        return result.estimates["compliance_effect_pp"]
    return over_two_units(result.estimates["compliance_slope_pp"])


KEYS = {"H-neurons": "hneuron", "DiffMean": "diffmean", "ITI heads": "iti", "SAE latents": "sae"}


def table_rows(estimates: dict[str, Estimate], methods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table's per-item rows: one per method, with its detection and steering estimates in full
    (each recomputable from its own arm's committed rows) and its rank p, KL and verdict."""
    rows = []
    for m in methods:
        key = KEYS[m["method"]]
        row_ = {"method": m["method"], "setting": m["setting"], "rank_p": m["rank_p"], "kl": m.get("kl"),
                "verdict": m["verdict"]}
        for part, name in (("auroc", f"{key}_auroc"), ("effect_pp", f"{key}_effect_pp")):
            e = estimates[name]
            row_.update({f"{part}": e.value, f"{part}_ci_low": e.ci[0], f"{part}_ci_high": e.ci[1],
                         f"{part}_level": e.level, f"{part}_n": e.n, f"{part}_method": e.method,
                         f"{part}_unit": e.unit})
        rows.append(row_)
    return rows


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The table's estimates from its committed rows (one per method)."""
    out = {}
    for r in items["methods"]:
        key = KEYS[r["method"]]
        for part in ("auroc", "effect_pp"):
            out[f"{key}_{part}"] = Estimate(value=r[part], ci=(r[f"{part}_ci_low"], r[f"{part}_ci_high"]),
                                            level=r[f"{part}_level"], n=r[f"{part}_n"], method=r[f"{part}_method"],
                                            unit=r[f"{part}_unit"])
    return out


def run(config: dict[str, Any], ctx: Any) -> Result:
    cfg = Config(**config)
    names = ["probe", "neurons", "neurons_random", "directions", "diffmean", "iti", "diffmean_random", "iti_random"]
    up = {name: ctx.upstream(name).result for name in names + (["sae", "sae_random", "sae_detector"] if cfg.sae else [])}
    diffmean_auroc = Estimate(**up["diffmean"].values["detection_auroc"])
    qa = lambda r, name: r.estimates.get(name).value if r.estimates.get(name) else None  # noqa: E731
    h_kl = up["neurons_random"].values.get("kl") or {}
    methods = [
        row("H-neurons", up["probe"].estimates["auroc"], scaled(up["neurons"], cfg.scaled_rows),
            up["neurons_random"].values["rank_p"], setting="slope over alphas 0 to 3, x 2" if cfg.scaled_rows == "slope" else "alpha 3 vs 1",
            kl=(h_kl.get("h_neurons") or [None])[-1], qa_change_pp=qa(up["neurons"], "qa_effect_pp")),
        row("DiffMean", diffmean_auroc, up["diffmean"].estimates["compliance_effect_pp"],
            up["diffmean_random"].values["rank_p_kl"],
            setting=f"layer {up['diffmean'].values['chosen_layer']}, strength {up['diffmean'].values['chosen_strength']:g} vs 0",
            kl=up["diffmean_random"].values.get("target_kl"), qa_change_pp=qa(up["diffmean"], "qa_effect_pp")),
        row("ITI heads", up["directions"].estimates["iti_auroc"], up["iti"].estimates["compliance_effect_pp"],
            up["iti_random"].values["rank_p_kl"], setting=f"strength {up['iti'].values['chosen_strength']:g} vs 0",
            kl=up["iti_random"].values.get("target_kl"), qa_change_pp=qa(up["iti"], "qa_effect_pp")),
    ]
    estimates = {
        "hneuron_auroc": up["probe"].estimates["auroc"],
        "hneuron_effect_pp": scaled(up["neurons"], cfg.scaled_rows),
        "diffmean_auroc": diffmean_auroc,
        "diffmean_effect_pp": up["diffmean"].estimates["compliance_effect_pp"],
        "iti_auroc": up["directions"].estimates["iti_auroc"],
        "iti_effect_pp": up["iti"].estimates["compliance_effect_pp"],
    }
    if cfg.sae:
        s_kl = up["sae_random"].values.get("kl") or {}
        methods.append(row("SAE latents", up["sae_detector"].estimates["sae_auroc"],
                           scaled(up["sae"], cfg.scaled_rows), up["sae_random"].values["rank_p"],
                           setting=("slope over alphas 0 to 3, x 2 (" if cfg.scaled_rows == "slope" else "alpha 3 vs 1 (")
                           + "decoded delta)", kl=(s_kl.get("h_features") or [None])[-1],
                           qa_change_pp=None))
        estimates.update(sae_auroc=up["sae_detector"].estimates["sae_auroc"],
                         sae_effect_pp=scaled(up["sae"], cfg.scaled_rows))
    for m in methods:
        m["verdict"] = verdict(m, cfg.lever_margin_pp)
    steers = [m["method"] for m in methods if m["verdict"] == "a lever"]
    not_levers = [m["method"] for m in methods if m["verdict"] == "not a lever"]
    unspecific = [m["method"] for m in methods if m["verdict"] == "moves it, not specifically"]
    best = max(methods, key=lambda m: m["detection"])
    contenders = best_detectors(methods)
    values = {"methods": methods, "steering_methods": steers, "n_steering": len(steers), "n_methods": len(methods),
              "steering_methods_text": ", ".join(steers) if steers else "none",
              "not_lever_methods_text": ", ".join(not_levers) if not_levers else "none", "n_not_lever": len(not_levers),
              "unspecific_methods_text": ", ".join(unspecific) if unspecific else "none", "n_unspecific": len(unspecific),
              "n_undetermined": len(methods) - len(steers) - len(not_levers) - len(unspecific),
              "lever_margin_pp": cfg.lever_margin_pp,
              "best_detector": best["method"], "best_detector_verdict": best["verdict"],
              "best_detector_steers": int(best["verdict"] == "a lever"),
              "best_detector_not_lever": int(best["verdict"] == "not a lever"),
              "best_detectors": [m["method"] for m in contenders],
              "best_detectors_text": ", ".join(f"{m['method']} ({m['verdict']})" for m in contenders),
              "n_best_detectors": len(contenders),
              "best_detectors_not_lever": int(all(m["verdict"] == "not a lever" for m in contenders)),
              **{f"{key}_rank_p": m["rank_p"] for key, m in zip(("hneuron", "diffmean", "iti", "sae")[: len(methods)], methods,
                                                                strict=True)},
              "kl_text": ", ".join(f"{m['method']} {m['kl']:.3f}" if m.get("kl") is not None else f"{m['method']} not measured"
                                   for m in methods),
              "diffmean_layer": up["diffmean"].values["chosen_layer"],
              "diffmean_strength": up["diffmean"].values["chosen_strength"],
              "iti_strength": up["iti"].values["chosen_strength"]}
    values.update(control_balance(
        {"H-neurons": {**(up["neurons_random"].values.get("balance") or {}), **end_balance(h_kl, "h_neurons")} or None,
         "DiffMean": up["diffmean_random"].values.get("balance"),
         "ITI heads": up["iti_random"].values.get("balance"),
         **({"SAE latents": {**(up["sae_random"].values.get("balance") or {}), **end_balance(s_kl, "h_features")}
             or None} if cfg.sae else {})}, cfg.balance_tolerance))
    # the sweeps' committed per-item rows, as a reader has them
    sweeps = {name: committed_sweep(ctx.upstream(name), "alpha" if name in ("neurons", "sae") else "strength",
                                    {"set": "h-features"} if name == "sae" else None)
              for name in ("neurons", "diffmean", "iti", *(("sae",) if cfg.sae else ()))}
    h_alphas = [float(a) for a in sweeps["neurons"]["settings"]]
    values["by_family"] = {
        "H-neurons": by_family(sweeps["neurons"], h_alphas.index(1.0), h_alphas.index(3.0)),
        "DiffMean": by_family(sweeps["diffmean"], 0, 1),
        "ITI heads": by_family(sweeps["iti"], 0, 1)}
    values["control_answers"] = {
        label: control_answers(sweep_answers(sweeps[name]), ctx.upstream(f"{name}_random").items("outcomes"))
        for label, name in (("DiffMean", "diffmean"), ("ITI heads", "iti"))}
    trivial = ctx.upstream("baselines").result.estimates
    values["trivial_detectors"] = {name: {"auroc": trivial[f"{name}_auroc"].value, "ci": list(trivial[f"{name}_auroc"].ci)}
                                   for name in ("logprob", "strongest") if f"{name}_auroc" in trivial}
    if cfg.sae:
        s_alphas = [float(a) for a in sweeps["sae"]["settings"]]
        values["by_family"]["SAE latents"] = by_family(sweeps["sae"], s_alphas.index(1.0), s_alphas.index(3.0))
    ctx.save_items("methods", table_rows(estimates, methods))
    return Result(estimates=estimates, values=values)
