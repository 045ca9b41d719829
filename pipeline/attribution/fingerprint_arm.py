"""The seed's step 8: select by the fingerprint. The candidates of the families the fingerprint
reports on (those whose attribution ranks the choice of its layer never saw) are ranked by the
fingerprint's out-of-fold prediction of their rank (each family's predictions come from a ridge
fit on the other families: no gradient of a reported-family example is needed to rank it), and one
arm of pipeline/attribution/arm.py runs on that ranking in place of Bergson's: the top k, random
subsets matched to their composition, or a trivial filter at the same k, all drawn from the same
reported-family candidates, finetuned and scored exactly as the attribution arms are.

The config is an arm's config plus `fingerprint`, the config of the fingerprint node
(pipeline/attribution/fingerprint.py) whose predictions rank the candidates; the reading the arm
reports is "fingerprint (layer L)".
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pydantic import Field, ValidationError, model_validator

from claims import Result
from pipeline.attribution import arm
from pipeline.attribution.config import ArmConfig, FingerprintConfig

PACKAGES = arm.PACKAGES
inputs = arm.inputs


class Config(ArmConfig):
    fingerprint: dict[str, Any] = Field(default_factory=dict, description="Config of the fingerprint node "
                                        "(pipeline.attribution.fingerprint) whose out-of-fold predictions rank the "
                                        "candidates of its reported families; `profile` is filled from this config.")

    @model_validator(mode="before")
    @classmethod
    def _fill_profile(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("fingerprint"), dict):
            profile = data.get("profile", cls.model_fields["profile"].default)
            data = {**data, "fingerprint": {"profile": profile, **data["fingerprint"]}}
        return data

    @model_validator(mode="after")
    def _fingerprint(self) -> Config:
        if self.reading != "chosen":
            raise ValueError("reading: the fingerprint arm ranks by the fingerprint's predictions; leave reading out")
        if self.fingerprint["profile"] != self.profile:
            raise ValueError(f"fingerprint.profile is {self.fingerprint['profile']!r} but this config's profile is "
                             f"{self.profile!r}")
        try:
            FingerprintConfig(**self.fingerprint)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            raise ValueError(f"fingerprint.{where}: {msg}" if where else f"fingerprint: {msg}") from None
        return self

    def arm_config(self) -> dict[str, Any]:
        """The config of the attribution arm this one runs (everything but `fingerprint`)."""
        return {k: v for k, v in self.model_dump(mode="json").items() if k != "fingerprint"}


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    edges = {name: edge for name, edge in arm.requires(cfg.arm_config()).items() if name in ("pool", "finetune", "losses")}
    edges["fingerprint"] = ("pipeline.attribution.fingerprint", cfg.fingerprint)
    return edges


def predicted_scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The fingerprint's per-example rows as the scores a ranking reads: the reported examples' pool
    indices and their out-of-fold predictions of the attribution rank (higher: more useful)."""
    reported = [r for r in rows if r["reported"]]
    if not reported:
        raise ValueError("the fingerprint reports on no example")
    return {"pool_index": [int(r["pool_index"]) for r in reported], "scores": [float(r["pred_sae"]) for r in reported]}


class Ranked:
    """The run's context as arm.py reads it, with the fingerprint's predictions standing in for
    Bergson's scores and its layer for the chosen reading; everything else is the context itself."""

    def __init__(self, ctx: Any, reading: str, scores: dict[str, Any]) -> None:
        self._ctx = ctx
        values = {**scores, "reading_scores": {reading: scores["scores"]}}
        self._views = {"scores": SimpleNamespace(result=SimpleNamespace(values=values)),
                       "readings": SimpleNamespace(result=SimpleNamespace(values={"chosen": reading}))}

    def upstream(self, name: str) -> Any:
        return self._views[name] if name in self._views else self._ctx.upstream(name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The arm's estimates from its per-item rows, as arm.py computes them."""
    return arm.recompute(items, Config(**config).arm_config())


def run(config: dict[str, Any], ctx: Any) -> Result:
    cfg = Config(**config)
    up = ctx.upstream("fingerprint")
    layer, name = up.result.values["sae_layer"], up.result.values["sae_dictionary"]
    result = arm.run(cfg.arm_config(), Ranked(ctx, f"fingerprint (dictionary {name})",
                                              predicted_scores(up.items("examples"))))
    result.values.update(ranking="fingerprint", fingerprint_layer=layer, fingerprint_dictionary=name,
                         reported_families=up.result.values["reported_families"])
    return result
