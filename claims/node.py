"""A node of the experiment DAG: one experiment module run on one canonical config."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from claims.provenance import canonical_json, sha256_text


@dataclass(frozen=True)
class Node:
    experiment: str
    config_json: str = field(repr=False)  # canonical JSON, so that nodes hash and compare by value

    @classmethod
    def make(cls, experiment: str, config: dict[str, Any]) -> Node:
        return cls(experiment, canonical_json(config))

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.config_json)

    @property
    def config_hash(self) -> str:
        return sha256_text(self.config_json)[:12]

    @property
    def label(self) -> str:
        return f"{self.experiment}[{self.config_hash}]"
