"""Detection against steering, method by method: each method's detection AUROC on the held-out
detection questions beside its steering effect on compliance (percentage points, the strongest
setting against the unsteered model) on the evaluation items, each with its interval."""

from __future__ import annotations

from typing import Any

from claims import Result
from pipeline.hneurons.config import RandomProbeConfig
from pipeline.steering.config import SweepConfig, TasksConfig, detection


class Config(TasksConfig):
    level: float = 0.95


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    probe = detection(cfg.profile, cfg.seed)
    sweep = SweepConfig(**cfg.model_dump()).model_dump(mode="json")
    base = {"profile": cfg.profile, "seed": cfg.seed}
    return {
        "probe": ("pipeline.hneurons.probe", probe.model_dump(mode="json")),
        "probe_random": ("pipeline.hneurons.probe_random", RandomProbeConfig(**probe.model_dump()).model_dump(mode="json")),
        "neurons": ("pipeline.steering.neurons", sweep),
        "neurons_random": ("pipeline.steering.neurons_random", cfg.upstream(TasksConfig)),
        "directions": ("pipeline.steering.directions", base),
        "diffmean": ("pipeline.steering.direction_sweep", {**cfg.upstream(TasksConfig), "method": "diffmean"}),
        "iti": ("pipeline.steering.direction_sweep", {**cfg.upstream(TasksConfig), "method": "iti"}),
    }


def row(method: str, detection_est: Any, steering_est: Any, **extra: Any) -> dict[str, Any]:
    return {"method": method, "detection": detection_est.value, "detection_ci_low": detection_est.ci[0],
            "detection_ci_high": detection_est.ci[1], "steering": steering_est.value,
            "steering_ci_low": steering_est.ci[0], "steering_ci_high": steering_est.ci[1], **extra}


def run(config: dict[str, Any], ctx: Any) -> Result:
    est = {name: ctx.upstream(name).result.estimates for name in
           ("probe", "probe_random", "neurons", "neurons_random", "directions", "diffmean", "iti")}
    val = {name: ctx.upstream(name).result.values for name in ("neurons", "diffmean", "iti", "directions")}
    methods = [
        row("H-neurons", est["probe"]["auroc"], est["neurons"]["compliance_effect_pp"], setting="alpha 3 vs 1"),
        row("random neurons", est["probe_random"]["auroc"], est["neurons_random"]["compliance_effect_pp"],
            setting="alpha 3 vs 1"),
        row("DiffMean", est["directions"]["diffmean_auroc"], est["diffmean"]["compliance_effect_pp"],
            setting=f"strength {val['diffmean']['chosen_strength']:g} vs 0"),
        row("ITI heads", est["directions"]["iti_auroc"], est["iti"]["compliance_effect_pp"],
            setting=f"strength {val['iti']['chosen_strength']:g} vs 0"),
    ]
    return Result(
        estimates={
            "hneuron_auroc": est["probe"]["auroc"],
            "hneuron_effect_pp": est["neurons"]["compliance_effect_pp"],
            "hneuron_slope_pp": est["neurons"]["compliance_slope_pp"],
            "random_effect_pp": est["neurons_random"]["compliance_effect_pp"],
            "diffmean_auroc": est["directions"]["diffmean_auroc"],
            "diffmean_effect_pp": est["diffmean"]["compliance_effect_pp"],
            "iti_auroc": est["directions"]["iti_auroc"],
            "iti_effect_pp": est["iti"]["compliance_effect_pp"],
        },
        values={"methods": methods, "diffmean_strength": val["diffmean"]["chosen_strength"],
                "iti_strength": val["iti"]["chosen_strength"], "diffmean_layer": val["directions"]["diffmean_layer"]},
    )
