"""The results as people and programs read them: an aligned table, CSV or one JSON document,
each with the top-k classes of every file."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from typing import TextIO

from app.scoring.results import Result, Scored, Unreadable

Writer = Callable[[TextIO, list[Result], list[str], int], None]


def ranked(result: Scored, classes: list[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` most probable classes, most probable first."""
    order = sorted(range(len(classes)), key=lambda i: -result.probabilities[i])
    return [(classes[i], result.probabilities[i]) for i in order[:k]]


def write_table(stream: TextIO, results: list[Result], classes: list[str], k: int) -> None:
    scored = [result for result in results if isinstance(result, Scored)]
    if not scored:
        return
    width = max(len("file"), *(len(str(result.path)) for result in scored))
    label = max(len("class"), *(len(name) for name in classes))
    others = f"  next {k - 1}" if k > 1 else ""
    stream.write(f"{'file':<{width}}  {'class':<{label}}  {'p':>6}{others}\n")
    for result in scored:
        (name, probability), *rest = ranked(result, classes, k)
        shown = "  ".join(f"{other} {value:.3f}" for other, value in rest)
        line = f"{result.path!s:<{width}}  {name:<{label}}  {probability:6.3f}  {shown}"
        stream.write(line.rstrip() + "\n")


def write_csv(stream: TextIO, results: list[Result], classes: list[str], k: int) -> None:
    writer = csv.writer(stream, lineterminator="\n")
    ranks = [f"{kind}_{i}" for i in range(1, k + 1) for kind in ("class", "p")]
    writer.writerow(["file", "version", *ranks])
    for result in results:
        if isinstance(result, Scored):
            cells = [cell for name, p in ranked(result, classes, k) for cell in (name, repr(p))]
            writer.writerow([str(result.path), result.version, *cells])


def write_json(stream: TextIO, results: list[Result], classes: list[str], k: int) -> None:
    document = {
        "classes": classes,
        "predictions": [
            {
                "file": str(result.path),
                "version": result.version,
                "class": ranked(result, classes, 1)[0][0],
                "top_k": [{"class": n, "p": p} for n, p in ranked(result, classes, k)],
            }
            for result in results
            if isinstance(result, Scored)
        ],
        "unreadable": [
            {"file": str(result.path), "reason": result.reason}
            for result in results
            if isinstance(result, Unreadable)
        ],
    }
    json.dump(document, stream, indent=2)
    stream.write("\n")
