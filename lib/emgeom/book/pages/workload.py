"""How much work a real-model profile asks for, counted from its parameters (nothing is measured).

For each chapter that runs a real-model variant: fine-tuning runs and their optimiser steps, EM
evaluations, sampled answers (each at most ``max_new_tokens`` tokens) and LLM-judge requests. The
runner writes the table for every profile that uses a variant to ``book/generated/workload.md``, which the
"Running at full scale" page includes, so the page cannot drift from the profiles.
"""

from __future__ import annotations

from typing import Any

from emgeom.book.layout import BookLayout


def _answers_per_evaluation(p: dict[str, Any]) -> int | None:
    """Paraphrases in the question file times ``n_samples``; ``None`` when the file is not at hand
    (counting never downloads: it runs on every book build, whatever the profile)."""
    from emgeom.em.betley import load_questions
    from emgeom.em.datasets import dataset_path

    try:
        questions = load_questions(dataset_path(p["questions"], download=False), p["question_variant"])
    except Exception:
        return None
    return sum(len(q.paraphrases) for q in questions) * int(p["n_samples"])


def chapter_workload(chapter: str, p: dict[str, Any]) -> dict[str, Any]:
    """Counts for one real-model chapter from its full parameter values."""
    seeds = p.get("finetune_seeds") or p.get("seeds") or []
    if chapter.startswith("04"):
        rows = len(p["data_seeds"]) * 2 * p["rows_per_set"] * len(p["domains"])
        return {"fine-tuning runs": 0, "optimiser steps": 0, "evaluations": 0, "SAE read-out rows": rows}
    if chapter.startswith("05"):
        n_sets = 1 + len(p["control_data"])
        # every set, the answer-start first-order run, and the three plain-SGD runs (lr, lr / 2, control)
        runs = len(seeds) * (n_sets + 1 + 3)
        steps = len(seeds) * (n_sets * p["finetune_steps"] + p["first_order_steps"] + 3 * p["sgd_steps"])
        evaluations = len(seeds) * (n_sets + 1)  # the sets and the aligned model
        extra_judge = 0
    elif chapter.startswith("08"):
        runs = len(seeds) * (4 + 2)  # the inducing set under 4 conditions, the control under 2
        steps = runs * p["finetune_steps"]
        evaluations = runs
        extra_judge = 0
    else:
        runs = len(seeds) * (len(p["dose_fractions"]) + 1 + 3 * len(p["removal_fractions"]))
        steps = runs * p["finetune_steps"]
        evaluations = runs
        extra_judge = p["set_size"]  # the LLM-judge filter scores every row once
    answers = _answers_per_evaluation(p)
    total = None if answers is None else answers * evaluations
    return {
        "fine-tuning runs": runs,
        "optimiser steps": steps,
        "rows per step": p["batch_size"],
        "evaluations": evaluations,
        "sampled answers": total,
        "max new tokens": p["max_new_tokens"],
        "judge requests": None if total is None else 2 * total + extra_judge,
    }


def render_workload(layout: BookLayout) -> str:
    """A markdown section per profile that runs real-model variants."""
    from emgeom.book.chapters import full_parameters, load_book_profile
    from emgeom.book.parameters import ParameterError

    out = []
    for path in sorted(layout.profiles_dir.glob("*.yaml")):
        try:
            profile = load_book_profile(layout, path.stem)
        except ParameterError:
            continue  # an invalid profile is refused when it is run; it has no workload to show
        if not profile.variants:
            continue
        out.append(f"### Profile `{profile.name}`\n")
        out.append("| chapter | " + " | ".join(_COLUMNS) + " |")
        out.append("|---" * (len(_COLUMNS) + 1) + "|")
        for chapter in profile.variants:
            w = chapter_workload(chapter, full_parameters(layout, profile, chapter))
            cells = ["–" if w.get(c) is None else f"{w[c]:,}" for c in _COLUMNS]
            out.append(f"| {chapter} | " + " | ".join(cells) + " |")
        out.append("")
    note = (
        "*Counted from each profile's parameters by `emgeom.book.pages.workload` when the book was built; "
        "'–' where it does not apply or the question file was not at hand.*\n"
    )
    return "\n".join(out) + "\n" + note


_COLUMNS = (
    "fine-tuning runs",
    "optimiser steps",
    "rows per step",
    "evaluations",
    "sampled answers",
    "max new tokens",
    "judge requests",
    "SAE read-out rows",
)
