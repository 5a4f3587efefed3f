"""What every claim's room shares: a scorecard row (:class:`Claim`), the verdict it reads from the
recorded results (:class:`Verdict`), the three-way decision of an interval against its smallest effect
of interest with the design's power (:func:`decide`), and the formatting helpers the rules use.

A verdict decides:

- **reproduced**: the interval lies beyond 0 in the paper's direction and every gate of the claim is met;
- **absent**: the interval lies within ``±SESOI`` (the smallest effect of interest, declared with the
  result before any data), so an effect the claim cares about is ruled out;
- **contradicted**: the interval lies beyond 0 against the paper;
- **inconclusive**: none of these; the design's minimum detectable effect (80% power, two-sided 5%) and
  the replicates it would need to decide are shown beside it.

Only organisms decide. Seeds and SAEs are nested in an organism and averaged inside it; an interval over
anything else (the seeds of one organism, fine-tuning sets) is shown but left inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats as sps

ALPHA = 0.05

Results = dict[str, dict[str, Any]]  # result name -> {"value", "ci", "n_seeds", "note"}


#: The three-way rule of a claim decided by one interval, as the scorecard states it.
THREE = (
    "reproduced when the interval over organisms lies above 0 (and every gate holds); absent when it "
    "lies within ±SESOI; contradicted when below 0; else inconclusive"
)
#: Power of the minimum detectable effect.
POWER = 0.8
#: The most replicates :func:`replicates_needed` looks for.
NEEDED_LIMIT = 1000
#: The unit of replication a verdict decides over.
ORGANISMS = "organisms"
#: Verdicts that decide the claim one way or the other.
DECIDED = ("reproduced", "absent", "contradicted", "mixed")


@dataclass(frozen=True)
class Decision:
    """One interval decided against 0 and its smallest effect of interest.

    ``verdict`` is reproduced, absent, contradicted or inconclusive; ``why`` says what left it
    inconclusive; ``sesoi`` the declared smallest effect of interest (None: not declared); ``mde`` the
    smallest true effect this design detects with 80% power at two-sided 5% (in the result's unit,
    from the interval's width); ``needed`` the replicates that would bring the MDE down to the SESOI;
    ``n`` the replicates behind the interval and ``replicates`` what they are."""

    verdict: str
    why: str
    sesoi: float | None
    mde: float | None
    needed: int | None
    n: int
    replicates: str

    def power_text(self) -> str:
        sesoi = "no SESOI declared" if self.sesoi is None else f"SESOI {self.sesoi:.3g}"
        mde = "MDE n/a" if self.mde is None else f"MDE {self.mde:.3g}"
        if self.mde is None or self.sesoi is None:
            need = ""
        elif self.mde <= self.sesoi:
            need = "; enough to decide"
        elif self.needed is None:
            need = f"; more than {NEEDED_LIMIT} {self.replicates} would be needed"
        else:
            need = f"; {self.needed} {self.replicates} would decide"
        return f"{sesoi}; {mde} with n={self.n} {self.replicates or 'replicates'}{need}"


def _multiplier(n: int) -> float:
    """``t(0.975) + t(POWER)`` on ``n - 1`` degrees of freedom: the MDE in standard errors."""
    return float(sps.t.ppf(1 - ALPHA / 2, n - 1) + sps.t.ppf(POWER, n - 1))


def minimum_detectable(entry: dict[str, Any]) -> tuple[float | None, float | None]:
    """``(mde, sd)`` of a recorded mean over ``n_seeds`` replicates with a t interval: the standard
    error is the interval's half-width over ``t(0.975, n-1)``, the MDE that standard error times
    ``t(0.975) + t(0.8)``, and ``sd`` the between-replicate SD it implies (None without an interval or
    with fewer than 2 replicates). The wider side of the interval is taken as its half-width, so an
    interval clipped at a bound (a correlation at 1) does not understate the MDE."""
    n = int(entry.get("n_seeds") or 0)
    if not entry.get("ci") or n < 2:
        return None, None
    lo, hi = entry["ci"]
    half = max(entry["value"] - lo, hi - entry["value"])
    se = half / float(sps.t.ppf(1 - ALPHA / 2, n - 1))
    return _multiplier(n) * se, se * math.sqrt(n)


def replicates_needed(sd: float, sesoi: float, limit: int | None = None) -> int | None:
    """The fewest replicates whose MDE (between-replicate SD ``sd``) is at most ``sesoi``; None past
    ``limit`` (default :data:`NEEDED_LIMIT`)."""
    for m in range(2, (limit or NEEDED_LIMIT) + 1):
        if _multiplier(m) * sd / math.sqrt(m) <= sesoi:
            return m
    return None


def decide(entry: dict[str, Any], gates: Sequence[tuple[str, bool]] = ()) -> Decision:
    """The three-way decision of ``entry`` (a recorded result with its declared ``sesoi`` and
    ``replicates`` attached by the scorecard) in the paper's direction (above 0), with ``gates``
    (``(what, met)``) that a reproduction must also meet."""
    sesoi, replicates = entry.get("sesoi"), entry.get("replicates", "")
    n = int(entry.get("n_seeds") or 0)
    mde, sd = minimum_detectable(entry)
    needed = replicates_needed(sd, sesoi) if sd and sesoi else None
    if not entry.get("ci"):
        return Decision("inconclusive", "no interval", sesoi, mde, needed, n, replicates)
    lo, hi = entry["ci"]
    failed = [what for what, met in gates if not met]
    if replicates != ORGANISMS:
        why = f"the interval is over {replicates or 'undeclared replicates'}, not organisms"
        return Decision("inconclusive", why, sesoi, mde, needed, n, replicates)
    if n < 2:
        return Decision("inconclusive", "fewer than 2 organisms", sesoi, mde, needed, n, replicates)
    if sesoi is not None and -sesoi < lo and hi < sesoi:  # an effect too small to matter, even if not 0
        return Decision("absent", "", sesoi, mde, needed, n, replicates)
    if lo > 0:
        verdict, why = (
            ("reproduced", "") if not failed else ("inconclusive", "gate not met: " + ", ".join(failed))
        )
    elif hi < 0:
        verdict, why = "contradicted", ""
    else:
        verdict, why = (
            "inconclusive",
            "no SESOI declared" if sesoi is None else "the interval spans 0 and a SESOI",
        )
    return Decision(verdict, why, sesoi, mde, needed, n, replicates)


def combine(decisions: Sequence[Decision]) -> str:
    """One verdict from several parts (domains, sets, comparisons): all reproduced = reproduced; all
    absent or contradicted = absent (contradicted if all are); all decided, some each way = mixed;
    any part undecided = inconclusive."""
    verdicts = [d.verdict for d in decisions]
    if not verdicts:
        return "not run"
    if all(v == "reproduced" for v in verdicts):
        return "reproduced"
    if all(v == "contradicted" for v in verdicts):
        return "contradicted"
    if all(v in ("absent", "contradicted") for v in verdicts):
        return "absent"
    if "inconclusive" in verdicts:
        return "inconclusive"
    return "mixed"


def weakest(decisions: Sequence[Decision]) -> Decision | None:
    """The part that needs the most replicates to decide (the design's power for the whole claim): one
    needing more than :data:`NEEDED_LIMIT` first, a part with no interval (no power to show) last."""
    if not decisions:
        return None

    def need(d: Decision) -> float:
        if d.mde is None:
            return -1.0
        return math.inf if d.needed is None else float(d.needed)

    return max(decisions, key=lambda d: (need(d), d.mde or 0.0))


def missing(what: str) -> Decision:
    """A required part of a claim this build did not record: it leaves the claim undecided."""
    return Decision("inconclusive", f"{what} not recorded", None, None, None, 0, "")


@dataclass(frozen=True)
class Verdict:
    """A claim's row: what this build measured, the verdict and the rule, and the decision whose power
    the scorecard shows (the claim's weakest part)."""

    measured: str
    verdict: str  # reproduced | absent | contradicted | mixed | inconclusive | holds by construction | ...
    rule: str
    decision: Decision | None = None


@dataclass(frozen=True)
class Claim:
    """A row of the scorecard: ``id`` (what results declarations name in ``claims``), the claim in
    words, the chapter that tests it, the verdict function that reads the recorded results, and
    ``origin``: what in the model organism makes the result, i.e. whether it follows from the design (the
    corpus builds some links in on purpose), emerges from training, or is only measured."""

    id: str
    text: str
    where: str
    judge: Callable[[Results], Verdict]
    origin: str
    headline: tuple[str, ...] = ()
    """Results the scorecard figure shows for the claim (a ``{domain}`` or ``{set}`` placeholder stands
    for every recorded instance)."""
    unit: str = ""
    paper: float | None = None
    """The paper's own number for the headline, where it gave one."""


def recorded(r: Results, name: str) -> dict[str, Any] | None:
    """The recorded entry ``name``, or None when it was not recorded or has no value."""
    entry = r.get(name)
    return entry if entry and entry.get("value") is not None else None


def fmt(entry: dict[str, Any] | None, pct: bool = False) -> str:
    """``0.512 [0.261, 0.758]``, or in percent (``51.2% [26.1%, 75.8%]``); a CI that includes 0 says so."""
    if entry is None:
        return "not recorded"

    def one(x: float) -> str:
        return f"{x * 100:.1f}%" if pct else f"{x:.3f}"

    text = one(entry["value"])
    if entry.get("ci"):
        lo, hi = entry["ci"]
        text += f" [{one(lo)}, {one(hi)}]" + (" (CI includes 0)" if lo <= 0 <= hi else "")
    return text


def lower(entry: dict[str, Any]) -> float:
    """The lower end of the entry's interval (NaN without one)."""
    return entry["ci"][0] if entry.get("ci") else float("nan")


def upper(entry: dict[str, Any]) -> float:
    """The upper end of the entry's interval (NaN without one)."""
    return entry["ci"][1] if entry.get("ci") else entry["value"]


def single_verdict(
    e: dict[str, Any], measured: str, rule: str, gates: Sequence[tuple[str, bool]] = ()
) -> Verdict:
    """The verdict of a claim decided by one interval (:func:`decide`), with the decision's reason."""
    d = decide(e, gates)
    return Verdict(measured + (f" ({d.why})" if d.why else ""), d.verdict, rule, d)
