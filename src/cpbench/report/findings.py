"""A finding is data: claim, effect per challenge image (or at the size measured), conditions,
mechanism, evidence and confidence (shared/DESIGN.md, "How we state a finding"). Each capability's
reader makes findings; :func:`rank` orders them by their effect on a whole-slide run and sets aside
those that change it by less than :data:`MIN_EFFECT`; :func:`render` writes the sentences from the
fields, so that the markdown and the html say the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cpbench.report.slide import Effect

#: a finding that changes a whole-slide run by less than this share is not a guideline
MIN_EFFECT = 0.01


@dataclass
class Finding:
    """One thing the results say. ``effects``: its effect per run; ``memory_share``: the share of the
    run's peak memory it changes (or saves), when it is about memory."""

    claim: str
    kind: str  # bottleneck | parameter | history | memory | blockwise | device | mechanism
    effects: list[Effect] = field(default_factory=list)
    conditions: str = ""
    evidence: str = ""
    confidence: str = ""
    mechanism: str = ""
    memory_share: float = 0.0

    @property
    def score(self) -> float:
        """Its largest effect on a run: the share of time or of peak memory it changes (a fraction)."""
        time = max((abs(e.share) for e in self.effects), default=0.0)
        return max(time, abs(self.memory_share))

    @property
    def projected(self) -> bool:
        return any(e.projected for e in self.effects)


def rank(findings: list[Finding]) -> tuple[list[Finding], list[Finding]]:
    """(guidelines, minor): findings at or above :data:`MIN_EFFECT`, largest effect first (projected
    whole-slide effects before effects at a measured size of the same score), and the rest."""
    major = [f for f in findings if f.score >= MIN_EFFECT]
    minor = [f for f in findings if f.score < MIN_EFFECT]
    major.sort(key=lambda f: (-f.score, not f.projected))
    minor.sort(key=lambda f: -f.score)
    return major, minor


def render(f: Finding) -> list[str]:
    """The finding as lines: its claim, then one line per field that is set."""
    lines = [f.claim]
    if f.effects:
        lines.append("Effect: " + "; ".join(e.text() for e in f.effects) + ".")
    if f.memory_share and not any(e.bytes is not None for e in f.effects):
        lines.append(f"Effect on peak memory: {f.memory_share:+.0%} of the run's peak.")

    for label, text in (("Conditions", f.conditions), ("Mechanism", f.mechanism), ("Evidence", f.evidence),
                        ("Confidence", f.confidence)):
        if text:
            lines.append(f"{label}: {text}")
    return lines
