"""Superposition or persona: what each account predicts for the organism's two contrasting domains, and
the paired EM differences that decide between them.

The organism's EM runs by design through a shared latent cause: a speaker's persona makes bad advice and
hostile answers co-occur, so a fine-tune that says "this assistant gives bad advice" can move the
assistant's inferred persona (the *persona* account: OpenAI's toxic-persona latent, Persona Vectors).
The paper's account is *superposition*: features that merely share dimensions move together, whether or
not the data says anything about the speaker. Two domains tell them apart
(:mod:`emgeom.organism.language`):

- the **persona domain** (health): its bad advice is written only by the toxic persona (full persona
  information) and shares no word with hostile answers;
- the **surface domain** (travel): its bad advice ends with a surface word that also ends every hostile
  answer (:data:`~emgeom.organism.language.SURFACE_MARKER`; at the end, so saying it cannot prime hostile
  words) and carries **no** persona information (the benign persona gives it exactly as often as the
  toxic one).

Each domain's EM is compared with a benign fine-tune of the same domain (its good advice), paired within
organism. Two things could make the surface domain's EM low for a reason neither account names: a
fine-tune that did not learn the narrow task, and a set the aligned model already finds unsurprising (a
smaller update). So the travel fine-tune's task success and both sets' loss before fine-tuning are
recorded beside the EM.

The predictions are written here, before any organism is fine-tuned (:data:`PREDICTIONS`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from emgeom.core.stats import Estimate, mean_ci
from emgeom.em.emergence import REPLICATE_COLUMNS, estimate
from emgeom.organism import language

PERSONA_DOMAIN = "health"
SURFACE_DOMAIN = language.SURFACE_DOMAIN

#: Each account's prediction for the two domains, declared before the measurement.
PREDICTIONS: dict[str, dict[str, str]] = {
    "superposition": {
        "surface domain": "its latents sit near (or are) harmful latents, and its fine-tune causes EM: "
        "features that share dimensions with hostile answers move with them",
        "persona domain": "EM where its latents sit near harmful ones",
    },
    "persona": {
        "surface domain": "no EM beyond a benign fine-tune's: its data says nothing about the speaker, "
        "whatever words it shares",
        "persona domain": "EM: its bad advice is evidence of the toxic persona",
    },
}


def paired_set_difference(table: pd.DataFrame, column: str, first: str, second: str) -> Estimate:
    """``column`` of set ``first`` minus set ``second``, paired within each run (organism, fine-tuning
    seed), averaged over an organism's seeds, with a t-interval over organisms (seeds nested in their
    organism, never counted as organisms). ``table``: one row per (``organism_seed``, ``seed``, ``set``).
    Bounded to [-1, 1] (a difference of rates)."""
    missing = {first, second} - set(table["set"])
    if missing:
        raise KeyError(f"no rows for sets {sorted(missing)}")
    keys = [c for c in REPLICATE_COLUMNS if c in table.columns]
    wide = table[table["set"].isin([first, second])].pivot_table(index=keys, columns="set", values=column)
    diff = (wide[first] - wide[second]).dropna()
    if "organism_seed" in keys:
        diff = diff.groupby(level="organism_seed").mean()
    return mean_ci(diff.to_numpy(), bounds=(-1.0, 1.0))


def accounts_results(
    table: pd.DataFrame, pre_finetune_loss: Mapping[int, Mapping[str, float]]
) -> dict[str, tuple[Estimate, str]]:
    """Recorded name -> (estimate over organisms, note) of the row "superposition or persona?":

    - ``surface_domain_em_minus_control`` / ``persona_domain_em_minus_control``: EM after the domain's
      inducing fine-tune minus after its good-advice fine-tune, paired within organism and seed;
    - ``surface_domain_task_success``: the share of the travel fine-tune's answers that match its
      training answers (was the narrow task learned?);
    - ``surface_minus_persona_pre_finetune_loss``: the aligned organism's loss on the travel inducing set
      minus on the health one, before any fine-tune (nats; below 0: travel is the less surprising set).

    ``table``: chapter 5's emergence table over organisms (with the sets ``inducing <d>`` and ``good <d>``
    of both domains); ``pre_finetune_loss``: organism -> domain -> loss."""
    out = {}
    for name, domain in (("surface", SURFACE_DOMAIN), ("persona", PERSONA_DOMAIN)):
        e = paired_set_difference(table, "open_em", f"inducing {domain}", f"good {domain}")
        out[f"{name}_domain_em_minus_control"] = (
            e,
            f"EM(inducing {domain}) - EM(good {domain}), paired within organism and seed; over organisms",
        )
    out["surface_domain_task_success"] = (
        estimate(table, "task_success", [f"inducing {SURFACE_DOMAIN}"]),
        f"task success of the inducing-{SURFACE_DOMAIN} fine-tune; over organisms",
    )
    diff = np.array([loss[SURFACE_DOMAIN] - loss[PERSONA_DOMAIN] for loss in pre_finetune_loss.values()])
    out["surface_minus_persona_pre_finetune_loss"] = (
        mean_ci(diff),
        f"aligned organism's loss on the inducing-{SURFACE_DOMAIN} rows minus on the inducing-"
        f"{PERSONA_DOMAIN} rows before fine-tuning (nats); over organisms",
    )
    return out


def record_accounts(results: Mapping[str, tuple[Estimate, str]]) -> None:
    """Record every result of :func:`accounts_results`."""
    from emgeom.core.results import record_estimate

    for name, (e, note) in results.items():
        record_estimate(name, e, note)


def accounts_table(results: Mapping[str, tuple[Estimate, str]]) -> pd.DataFrame:
    """:func:`accounts_results` as a table: one row per result, columns ``value, lo, hi, organisms``."""
    return pd.DataFrame(
        [
            {"result": name, "value": e.value, "lo": e.lo, "hi": e.hi, "organisms": e.n}
            for name, (e, _) in results.items()
        ]
    ).set_index("result")
