"""The organism's SAE: an sae-lens SAE trained on the organism's own pretraining documents (a data seed
apart from the pretraining stream), cached under the aligned organism's key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emgeom.sae.train import SAESpec, train_sae

SAE_DATA_SEED_OFFSET = 10_000


def organism_sae(
    organism: Any, hooked: Any, tokenizer: Any, spec: SAESpec, root: Path | None = None
) -> tuple[Any, Path, bool]:
    """An SAE on the aligned organism, trained on fresh pretraining-style documents (a stream seeded
    apart from the organism's own pretraining data, ``10_000 + spec.seed``); cached."""
    from emgeom.organism.corpus import pretraining_documents

    data_seed = SAE_DATA_SEED_OFFSET + spec.seed
    documents = pretraining_documents(organism.config.corpus, seed=data_seed)
    model_key = f"{organism.config.stage_key('aligned')}/documents-{data_seed}"
    return train_sae(hooked, tokenizer, documents, spec, model_key=model_key, root=root)
