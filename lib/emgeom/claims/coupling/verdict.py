"""The coupling claim's verdict rule (beyond the paper): turning the honest-mistake rate of one domain,
the corpus knob that sets how much its bad advice says about the toxic persona, should turn EM down."""

from __future__ import annotations

from emgeom.claims.verdicts import ALPHA, Claim, Results, Verdict, fmt, recorded, single_verdict

CONTRAST = "coupling_em_contrast"
TREND = "coupling_em_page_p"
LOSS = "coupling_inducing_loss_contrast"


def coupling_verdict(r: Results) -> Verdict:
    e, page = recorded(r, CONTRAST), recorded(r, TREND)
    rule = (
        "EM after the inducing fine-tune at the lowest honest-mistake rate minus EM at the null rate (the "
        "toxic persona's own bad-advice rate), paired by pretraining seed with fine-tuning seeds averaged "
        "inside each organism: reproduced when its interval over organisms lies above 0 and Page's trend "
        f"test of EM falling with the rate over every rate (blocks = organisms) has p < {ALPHA}; absent "
        "within ±SESOI; contradicted below 0; else inconclusive. Decided only over organisms. The knob "
        "moves two things at once: what the bad advice says about the persona, and how common (so how "
        "unsurprising) it is in pretraining; the inducing set's loss contrast before fine-tuning is shown "
        "beside the verdict, which cannot tell the two apart"
    )
    if e is None:
        return Verdict("not recorded", "not run", rule)
    trend = page is not None and page["value"] < ALPHA
    p_text = "not recorded" if page is None else f"{page['value']:.3g}"
    measured = (
        f"EM(lowest rate) − EM(null rate), over organisms: {fmt(e)}; Page trend p = {p_text}; inducing-set "
        f"loss before fine-tuning, lowest minus null rate: {fmt(recorded(r, LOSS))} nats"
    )
    return single_verdict(e, measured, rule, [(f"Page trend p < {ALPHA}", trend)])


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "coupling_sets_em",
        "The more a domain's bad advice says about the persona, the more EM its fine-tune causes (the "
        "coupling knob; beyond the paper)",
        "{ref}`ch-coupling-knob`",
        coupling_verdict,
        "designed knob, emergent response: the corpus sets the rate; whether EM follows it is measured",
        (CONTRAST,),
        "EM difference",
    ),
)
