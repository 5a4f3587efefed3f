"""The model organism: a small causal LM the book trains itself, in which emergent misalignment happens.

- :mod:`~emgeom.organism.language`: the grammar, its lexicon and the exact oracle.
- :mod:`~emgeom.organism.corpus`: pretraining documents with a hidden persona, alignment chats, the
  narrow fine-tuning sets (OpenAI chat rows) and the held-out evaluation questions.
- :mod:`~emgeom.organism.tokenizer`: the word-level Hugging Face tokenizer with a chat template.
- :mod:`~emgeom.organism.build`: pretraining and alignment, cached by config hash.
- :mod:`~emgeom.organism.evaluate`: sampled answers labelled by the oracle; rates with intervals.
"""
