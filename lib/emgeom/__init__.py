"""emgeom: the library behind the executable companion book to
*Understanding Emergent Misalignment via Feature Superposition Geometry* (Minegishi et al., ACL 2026).

Packages are layers; a package imports only from the layers below it (``tests/unit/test_layers.py``
checks this with import-linter contracts declared in ``pyproject.toml``):

- :mod:`emgeom.book`: the chapter runner (profiles, parameters, caching, report) and generated pages.
- :mod:`emgeom.testing`: tiny random-weight Gemma-2/Llama models for tests and dry runs.
- :mod:`emgeom.plots`: the book's figures, one module per part.
- :mod:`emgeom.filtering`: per-sample scores, the filter study, its baselines, the ``emgeom`` command.
- :mod:`emgeom.em`: evaluators, Betley et al.'s evaluation and judge, EM datasets, emergence, feature
  geometry and the mechanism read-out.
- :mod:`emgeom.organism`: the model organism (language, corpus, tokenizer, cached build, oracle, SAE).
- :mod:`emgeom.sae`: SAE training (sae-lens), published SAEs and fit checks, quality, read-outs.
- :mod:`emgeom.lm` and :mod:`emgeom.toy` (independent of each other): language-model plumbing (loading,
  chat, batching, training, fine-tuning, sampling); toy models of superposition and the derivation.
- :mod:`emgeom.core`: I/O, artifact folders, statistics, recorded results.
"""

__version__ = "0.1.0"
