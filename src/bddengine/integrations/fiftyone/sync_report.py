"""What a sync did to the FiftyOne dataset, and what did not add up."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SyncReport:
    """What a sync did to the FiftyOne dataset, and what did not add up."""

    dataset: str
    collect: str
    rebuilt: str | None = None
    mirrored: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    views: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No mismatch was found."""
        return not self.mismatches

    def lines(self, *, verbose: bool = True) -> list[str]:
        """The report as text lines; ``verbose=False`` keeps the summary and every problem."""
        out = [f"FiftyOne dataset {self.dataset!r} (from {self.collect}): {len(self.mirrored)} run(s) mirrored, "
               f"{len(self.unchanged)} unchanged, {len(self.removed)} removed, {len(self.views)} saved views"]
        if self.rebuilt:
            out.append(f"  rebuilt from {self.collect}: {self.rebuilt}")
        sections = [("mirrored", self.mirrored), ("unchanged", self.unchanged)] if verbose else []
        sections += [("removed", self.removed), ("not mirrored", self.skipped), ("MISMATCH", self.mismatches)]
        for title, items in sections:
            out += [f"  {title}: {item}" for item in items]
        return out
