"""Emergent misalignment studies: evaluators, Betley et al.'s evaluation and judge, datasets, emergence,
feature geometry and the mechanism read-out."""
