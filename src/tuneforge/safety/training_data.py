"""Safety-aware tuning hooks: act on what the safety report shows.

- `safety_examples()` (`seed:safety` in any data spec): SFT examples from the suite's *train* half
  only — never the test half the safety report uses: misinformation items answered with their
  correction plus the domain's referral, risky items with their reference answer or the domain's
  refusal-with-referral, and benign look-alikes that have a reference answer (so tuning on refusals
  does not teach over-refusal). Injection items are left out (they have no reference answer).
- `unsafe_training_record()` / `filters.safety`: drop training examples whose request is risky
  (medication doses, stopping medicines, hiding income, forging, cheating, smuggling…) and whose
  response complies with neither a refusal/caution nor a referral — risky advice without a
  disclaimer.
"""

from __future__ import annotations

import re

from tuneforge.records import Example, Message
from tuneforge.safety.disclaimer import has_disclaimer
from tuneforge.safety.refusal import classify
from tuneforge.safety.suite import load_suite

REFERRAL = {
    "healthcare": "If you're unsure, ask a doctor or pharmacist, and in an emergency call your local emergency number.",
    "finance": "For your own situation, a regulated financial adviser can help.",
    "legal": "For your own case, a solicitor or a free legal advice service can help.",
    "travel": "Check the official travel advice for your destination before you go.",
    "education": "Your teacher or school counsellor can help you with this.",
}
REFUSAL = {
    "healthcare": "I can't help with that, because it could seriously harm your health.",
    "finance": "I can't help with that — it could be illegal or cost you money you cannot afford to lose.",
    "legal": "I can't help with that, because it could break the law and make your situation worse.",
    "travel": "I can't help with that — it could break local laws or put you in danger.",
    "education": "I can't help with that, because it would break the rules or hurt someone.",
}
RISKY_REQUEST = re.compile(
    r"\b(?:dose|dosage|overdose|how many (?:pills|tablets)|stop taking|skip (?:my|your|the)? ?(?:medication|medicine|pills)|"
    r"without (?:a )?prescription|mix .{0,30}(?:alcohol|pills|medication)|cold turkey|"
    r"(?:all|entire|whole) (?:my |of my )?(?:savings|pension|retirement)|hide (?:income|assets|money|it from)|"
    r"evade|avoid (?:paying )?tax|launder|insider|forge|fake (?:a |an )?(?:note|certificate|degree|id|document)|"
    r"cheat|hack|bypass|sneak|smuggl|overstay|bribe|without (?:them|him|her|his|the other parent)(?:'s)? (?:knowing|permission))",
    re.I,
)


def safety_examples(split: str = "train") -> list[Example]:
    out = []
    for it in load_suite(split=split):
        if it.category == "misinformation":
            answer = f"{it.correction} {REFERRAL[it.domain]}"
        elif it.category == "risky":
            answer = it.reference or f"{REFUSAL[it.domain]} {REFERRAL[it.domain]}"
        elif it.category == "benign" and it.reference:
            answer = it.reference
        else:
            continue
        out.append(
            Example(
                messages=[Message("user", it.prompt), Message("assistant", answer)],
                id=f"safety-{it.id}",
                domain=it.domain,
                task=it.category,
                source="safety-suite",
                meta={
                    "category": it.category,
                    "split": it.split,
                    "answer": "reference" if it.reference else "template",
                },
            )
        )
    return out


def unsafe_training_record(ex: Example) -> str:
    """Why a training example teaches unsafe behaviour ('' = it does not)."""
    if not RISKY_REQUEST.search(ex.instruction):
        return ""
    if classify(ex.response, ex.domain, ex.instruction) != "comply" or has_disclaimer(ex.response, ex.domain):
        return ""
    return "risky request answered without refusal, caution or a referral"
