"""The verdicts of `hamgara doctor`: one `Check` per question, and the report a person reads."""

from __future__ import annotations

from dataclasses import dataclass

OK, WARNING, PROBLEM = "ok", "warning", "problem"


@dataclass
class Check:
    """One verdict of the review."""

    section: str
    name: str
    verdict: str
    evidence: str
    fix: str = ""


def render_markdown(checks: list[Check]) -> str:
    """reports/doctor.md: problems first, each with its evidence and fix."""
    order = {PROBLEM: 0, WARNING: 1, OK: 2}
    counts = {v: sum(c.verdict == v for c in checks) for v in (PROBLEM, WARNING, OK)}
    lines = [
        "# Hamgara doctor",
        "",
        f"{counts[PROBLEM]} problem(s), {counts[WARNING]} warning(s), {counts[OK]} ok.",
        "",
        "| | section | check | evidence | fix |",
        "|---|---|---|---|---|",
    ]
    mark = {PROBLEM: "PROBLEM", WARNING: "warning", OK: "ok"}
    for c in sorted(checks, key=lambda c: order[c.verdict]):
        lines.append(f"| {mark[c.verdict]} | {c.section} | {c.name} | {c.evidence} | {c.fix} |")
    return "\n".join(lines) + "\n"
