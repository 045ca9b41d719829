"""The site's "changes since the last publish" page: claims.diff between the state recorded at
the last publish (refs/claims/published, else HEAD~1) and the claims of this build."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from claims.diff import ClaimState, Diff, State, at_revision, compare, raw_specs, resolve
from claims.errors import ClaimsError
from claims.project import Project


@dataclass
class Changes:
    """What the page shows: the comparison, or why there is none."""

    diff: Diff | None
    why: str = ""  # why there is no comparison (not a git checkout, a single commit, ...)
    published: bool = False  # the old state is a recorded publish (not HEAD~1)

    def data(self) -> dict[str, Any]:
        return {"diff": self.diff.data() if self.diff else None, "why": self.why, "published": self.published}


def since_last_publish(project: Project, study: Any) -> Changes:
    try:
        commit, label = resolve(project, None)
        old = at_revision(project, commit, label)
    except ClaimsError as exc:
        return Changes(None, exc.message)
    raw = raw_specs(project.specs_dir)
    new = State("this build", None, {r.id: ClaimState.of(r.outcome.to_json(), raw.get(r.id, {}))
                                     for r in study.records})
    return Changes(compare(old, new), published=label.startswith("last publish"))
