"""Detection against steering, method by method: each method's detection AUROC on the held-out
detection questions beside its steering effect on compliance (percentage points, the strongest
setting against the unsteered model, on the items the model knows), each with its interval, and
the verdict of each method's control (the rank of the real effect among matched random draws)."""

from __future__ import annotations

from typing import Any

from claims import Estimate, Result
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


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    base = cfg.upstream(TasksConfig)
    return {
        "probe": ("pipeline.hneurons.probe", detection(cfg.profile, cfg.seed).model_dump(mode="json")),
        "neurons": ("pipeline.steering.neurons", SweepConfig(**base).model_dump(mode="json")),
        "neurons_random": ("pipeline.steering.neurons_random", RandomSweepConfig(**base).model_dump(mode="json")),
        "directions": ("pipeline.steering.directions", {"profile": cfg.profile, "seed": cfg.seed}),
        **{method: ("pipeline.steering.direction_sweep", DirectionSweepConfig(**base, method=method).model_dump(mode="json"))
           for method in ("diffmean", "iti")},
        **{f"{method}_random": ("pipeline.steering.direction_random",
                                DirectionRandomConfig(**base, method=method).model_dump(mode="json"))
           for method in ("diffmean", "iti")},
    }


def row(method: str, detection_est: Any, steering_est: Any, rank_p: float, **extra: Any) -> dict[str, Any]:
    return {"method": method, "detection": detection_est.value, "detection_ci_low": detection_est.ci[0],
            "detection_ci_high": detection_est.ci[1], "steering": steering_est.value,
            "steering_ci_low": steering_est.ci[0], "steering_ci_high": steering_est.ci[1], "rank_p": rank_p, **extra}


def run(config: dict[str, Any], ctx: Any) -> Result:
    up = {name: ctx.upstream(name).result for name in
          ("probe", "neurons", "neurons_random", "directions", "diffmean", "iti", "diffmean_random", "iti_random")}
    diffmean_auroc = Estimate(**up["diffmean"].values["detection_auroc"])
    methods = [
        row("H-neurons", up["probe"].estimates["auroc"], up["neurons"].estimates["compliance_effect_pp"],
            up["neurons_random"].values["rank_p"], setting="alpha 3 vs 1"),
        row("DiffMean", diffmean_auroc, up["diffmean"].estimates["compliance_effect_pp"],
            up["diffmean_random"].values["rank_p_kl"],
            setting=f"layer {up['diffmean'].values['chosen_layer']}, strength {up['diffmean'].values['chosen_strength']:g} vs 0"),
        row("ITI heads", up["directions"].estimates["iti_auroc"], up["iti"].estimates["compliance_effect_pp"],
            up["iti_random"].values["rank_p_kl"], setting=f"strength {up['iti'].values['chosen_strength']:g} vs 0"),
    ]
    return Result(
        estimates={
            "hneuron_auroc": up["probe"].estimates["auroc"],
            "hneuron_effect_pp": up["neurons"].estimates["compliance_effect_pp"],
            "diffmean_auroc": diffmean_auroc,
            "diffmean_effect_pp": up["diffmean"].estimates["compliance_effect_pp"],
            "iti_auroc": up["directions"].estimates["iti_auroc"],
            "iti_effect_pp": up["iti"].estimates["compliance_effect_pp"],
        },
        values={"methods": methods, "hneuron_rank_p": methods[0]["rank_p"], "diffmean_rank_p": methods[1]["rank_p"],
                "iti_rank_p": methods[2]["rank_p"], "diffmean_layer": up["diffmean"].values["chosen_layer"],
                "diffmean_strength": up["diffmean"].values["chosen_strength"],
                "iti_strength": up["iti"].values["chosen_strength"]},
    )
