"""The grades of a class, written out: one CSV row per submission, and a summary per
question (how many lost it, the mean score, the most common reason) that shows which
question confused the class."""

from __future__ import annotations

import csv
import re
from collections import Counter

from .grades import Grade


def write_csv(grades: list[Grade], path) -> None:
    """One row per submission: a column per question, the total, what is possible, and
    feedback."""
    questions = sorted(
        {q for g in grades for q in g.possible}, key=lambda q: int(q[1:])
    )
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["submission", "exercise", *questions, "total", "possible", "feedback"]
        )
        for g in grades:
            feedback = " | ".join(f"{q}: {text}" for q, text in g.feedback.items())
            row = [g.scores.get(q, "") for q in questions]
            writer.writerow(
                [
                    g.submission,
                    g.exercise,
                    *row,
                    g.total,
                    sum(g.possible.values()),
                    feedback,
                ]
            )


def _reasons(feedback: str) -> list[str]:
    """The separate reasons in one question's feedback, with cell numbers left out so
    that the same mistake in notebooks of different lengths counts as one."""
    return [
        re.sub(r"^cell \d+ ", "a cell ", reason.strip())
        for reason in feedback.split("; ")
        if reason.strip()
    ]


def question_summary(grades: list[Grade]) -> list[dict]:
    """Per exercise and question: how many submissions lost marks on it, their mean
    score, and the most common reason, with how many gave it (what confused the class).
    """
    rows = []
    for exercise in sorted({g.exercise for g in grades if g.possible}):
        graded = [g for g in grades if g.exercise == exercise and g.possible]
        for question in sorted(
            {q for g in graded for q in g.possible}, key=lambda q: int(q[1:])
        ):
            lost = [
                g
                for g in graded
                if g.scores.get(question, 0.0) < g.possible.get(question, 0.0)
            ]
            reasons = Counter(
                reason
                for g in lost
                for reason in set(_reasons(g.feedback.get(question, "")))
            )
            common, count = reasons.most_common(1)[0] if reasons else ("", 0)
            rows.append(
                {
                    "exercise": exercise,
                    "question": question,
                    "submissions": len(graded),
                    "lost": len(lost),
                    "mean": sum(g.scores.get(question, 0.0) for g in graded)
                    / len(graded),
                    "possible": max(g.possible.get(question, 0.0) for g in graded),
                    "reason": common,
                    "reason_count": count,
                }
            )
    return rows


def summary_markdown(grades: list[Grade]) -> str:
    """:func:`question_summary` as a Markdown table, with the submissions that could not
    be graded."""
    lines = [
        "| exercise | question | lost it | mean score | most common reason |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in question_summary(grades):
        reason = (
            f"{row['reason']} ({row['reason_count']} of {row['lost']})"
            if row["lost"]
            else ""
        )
        lines.append(
            f"| {row['exercise']} | {row['question']} "
            f"| {row['lost']} of {row['submissions']} "
            f"| {row['mean']:.2f} / {row['possible']:g} | {reason.replace('|', '/')} |"
        )
    ungraded = [g for g in grades if not g.possible]
    if ungraded:
        lines += [
            "",
            f"Not graded ({len(ungraded)}): "
            + "; ".join(
                f"{g.submission}: {g.feedback.get('notebook', '')}" for g in ungraded
            ),
        ]
    return "\n".join(lines) + "\n"
