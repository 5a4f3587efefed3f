"""emgeom: the library behind the executable companion book to
*Understanding Emergent Misalignment via Feature Superposition Geometry* (Minegishi et al., ACL 2026).

Modules are named for the idea they hold:

- :mod:`emgeom.toy`: toy models of superposition (Elhage et al. 2022), trained many at once.
- :mod:`emgeom.derivation`: the gradient-level derivation and its numerical checks.
- :mod:`emgeom.stats`: confidence intervals, bootstrap and correlation helpers.
- :mod:`emgeom.results`: the one helper chapters use to record their headline numbers.
- :mod:`emgeom.book`: the chapter runner (profiles, parameter validation, caching, build report).
"""

__version__ = "0.1.0"
