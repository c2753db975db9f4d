"""The plan a flow's planning step hands to its apply step.

A plan is JSON-ready so that it can travel through XCom. Every input record ends up in
exactly one place: an action, a skip (nothing to do, with the reason), a reject (a bad record,
quarantined with the reason), or a pending entry (retried by the next run). Reasons hold ids
and reason codes, never personal data.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FlowPlan:
    """Actions and outcomes planned for one flow."""

    flow: str
    actions: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    pending: list[dict[str, str]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    #: Work for other flows found while planning this one: ``{"flow", "record_type", ...}``.
    deferred: list[dict[str, str]] = field(default_factory=list)
    #: Information for the report that is neither an action nor a problem (ambiguous matches).
    notes: list[dict[str, Any]] = field(default_factory=list)

    def add(self, action: str, **details: Any) -> None:
        self.actions.append({"action": action, **details})

    def skip(self, record_type: str, record_id: str, reason: str) -> None:
        self.skipped.append(
            {"record_type": record_type, "record_id": str(record_id), "reason": reason}
        )

    def reject(self, record_type: str, record_id: str, reason: str) -> None:
        self.rejected.append(
            {"record_type": record_type, "record_id": str(record_id), "reason": reason}
        )

    def pend(self, record_type: str, record_id: str, reason: str) -> None:
        self.pending.append(
            {"record_type": record_type, "record_id": str(record_id), "reason": reason}
        )

    def defer(self, flow: str, record_type: str, record_id: str, reason: str) -> None:
        self.deferred.append(
            {
                "flow": flow,
                "record_type": record_type,
                "record_id": str(record_id),
                "reason": reason,
            }
        )

    def conflict(self, **details: Any) -> None:
        self.conflicts.append({"flow": self.flow, **details})

    def action_counts(self) -> dict[str, int]:
        """Return planned actions by name, plus ``skipped``, ``rejected`` and ``pending``."""
        counts = Counter(action["action"] for action in self.actions)
        counts["skipped"] = len(self.skipped)
        counts["rejected"] = len(self.rejected)
        counts["pending"] = len(self.pending)
        return dict(counts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "actions": self.actions,
            "skipped": self.skipped,
            "rejected": self.rejected,
            "pending": self.pending,
            "conflicts": self.conflicts,
            "deferred": self.deferred,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlowPlan:
        return cls(
            flow=data["flow"],
            actions=list(data.get("actions", [])),
            skipped=list(data.get("skipped", [])),
            rejected=list(data.get("rejected", [])),
            pending=list(data.get("pending", [])),
            conflicts=list(data.get("conflicts", [])),
            deferred=list(data.get("deferred", [])),
            notes=list(data.get("notes", [])),
        )

    def extend(self, other: FlowPlan) -> None:
        """Append another plan of the same flow (plans are made batch by batch)."""
        self.actions.extend(other.actions)
        self.skipped.extend(other.skipped)
        self.rejected.extend(other.rejected)
        self.pending.extend(other.pending)
        self.conflicts.extend(other.conflicts)
        self.deferred.extend(other.deferred)
        self.notes.extend(other.notes)
