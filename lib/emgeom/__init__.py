"""emgeom: the library behind the executable companion book to
*Understanding Emergent Misalignment via Feature Superposition Geometry* (Minegishi et al., ACL 2026).

Modules are named for the idea they hold:

- :mod:`emgeom.toy`: toy models of superposition (Elhage et al. 2022), trained many at once.
- :mod:`emgeom.derivation`: the gradient-level derivation and its numerical checks.
- :mod:`emgeom.organism`: the model organism (synthetic chat language, oracle, cached build, evaluation).
- :mod:`emgeom.models`: one loader for local folders and hub ids (Hugging Face and TransformerLens views).
- :mod:`emgeom.chat`: OpenAI chat JSONL reading/checking and chat tokenization with an answer mask.
- :mod:`emgeom.training`, :mod:`emgeom.finetune`: the training loop; LoRA (peft) and full fine-tuning.
- :mod:`emgeom.emergence`: fine-tune on each set for several seeds and measure EM.
- :mod:`emgeom.saes`: SAE training (sae-lens), published SAEs, fit checks, quality metrics.
- :mod:`emgeom.geometry`: feature sets and their closeness to harmful features; tests and baselines.
- :mod:`emgeom.mechanism`: latent changes after fine-tuning against similarity to the target.
- :mod:`emgeom.filtering`: per-sample scores (stop-at-layer fast path) and the filter; :mod:`emgeom.cli`
  the ``emgeom score``/``filter`` command; :mod:`emgeom.judges` the text-classifier judge baseline;
  :mod:`emgeom.filter_study` the dose-response and filter-comparison experiment.
- :mod:`emgeom.betley`: Betley et al.'s evaluation files and the 0-100 LLM judge client (real models);
  :mod:`emgeom.em_datasets` their datasets by URL into a checksum-verified cache.
- :mod:`emgeom.artifacts`: config-hash-keyed, atomically written artifact folders.
- :mod:`emgeom.stats`: confidence intervals, bootstrap and correlation helpers.
- :mod:`emgeom.results`: the one helper chapters use to record their headline numbers.
- :mod:`emgeom.book`: the chapter runner (profiles, parameter validation, caching, build report).
"""

__version__ = "0.1.0"
