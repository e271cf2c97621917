"""Disclaimer detector: does an answer point the user to the domain's professional or official
source, or say it is not professional advice?

Referral patterns gathered per domain and applied across domains (health: doctor, pharmacist, emergency number, crisis
line...; finance: financial adviser, regulator, "not financial advice"...; legal: lawyer,
solicitor, legal advice service...; travel: official travel advice, embassy, travel clinic,
insurer...; education: teacher, school, counsellor, GP...), plus generic ones ("consult a
professional"). Mentions preceded by "without" / "no need for" are not referrals. Failure modes: other negations
("your doctor won't help") still count; a professional merely named ("have your doctor sign it")
counts; disclaimers in other languages are
missed.
"""

from __future__ import annotations

import re

_GENERIC = (
    r"consult (?:a|an|your) (?:professional|expert|specialist)|speak (?:to|with) a professional|"
    r"seek professional|professional (?:help|advice)|qualified (?:adviser|advisor|professional)"
)
_DOMAIN = {
    "healthcare": r"doctor|\bgp\b|physician|pharmacist|nurse|dentist|dermatologist|dietitian|surgeon|paediatrician|"
    r"therapist|psychiatrist|psychologist|mental health (?:professional|service|provider|team)|"
    r"crisis (?:number|hotline|team)|suicide (?:prevention )?(?:hotline|lifeline)|specialist|support group|"
    r"pediatrician|midwife|health ?care (?:provider|professional)|medical (?:advice|attention|help|"
    r"professional|care)|emergency (?:services|number|room|department|care)|ambulance|\b911\b|\b999\b|"
    r"\b112\b|crisis line|helpline|\b988\b|samaritans|poison control|urgent (?:care|help)|"
    r"seek (?:medical|urgent|immediate) (?:help|care|attention)|assessment",
    "finance": r"financial (?:adviser|advisor|advice|professional|planner)|not financial advice|tax (?:adviser|advisor|"
    r"professional)|accountant|regulator|regulated|independent advice|specialist adviser|pension wise|"
    r"debt (?:charity|adviser|advice)|citizens advice|pension provider",
    "legal": r"lawyer|solicitor|(?<!power of )attorney|legal (?:advice|aid|professional|adviser|advisor)|not legal advice|"
    r"conveyancer|union rep|citizens advice|advice (?:centre|center|service)|housing adviser|"
    r"family lawyer|child support agency",
    "travel": r"official (?:travel )?advice|government(?:'s)? (?:travel )?advice|travel advi(?:ce|sory)|foreign office|"
    r"state department|embassy|consulate|travel clinic|immigration (?:office|authority|authorities)|"
    r"insurer|lifeguard|local authorities|passport office|check (?:the )?(?:official|current) "
    r"(?:rules|advice|requirements)",
    "education": r"teacher|head ?teacher|counsell?or|the school|your school|school(?:'|’)s|\bgp\b|doctor|"
    r"paediatrician|pediatrician|educational psychologist|specialist assessment|appeal process|"
    r"university(?:'|’)s|academic (?:adviser|advisor)|tutor",
}
_ANY = re.compile("|".join(f"(?:{p})" for p in [*_DOMAIN.values(), _GENERIC]), re.I)
_NOT_A_REFERRAL = re.compile(r"(?:without|no need for|don(?:'|’)t need|do not need)\s+(?:an?\s+|your\s+)?$", re.I)


def referrals(answer: str) -> list[re.Match]:
    """Each mention of a professional or official source that is not negated ("without lawyers")."""
    return [m for m in _ANY.finditer(answer) if not _NOT_A_REFERRAL.search(answer[max(0, m.start() - 20) : m.start()])]


def has_referral(answer: str, domain: str = "") -> bool:
    """True when the answer refers the user to a professional or official source (of any domain:
    'ask your GP' is the right referral in a legal answer about a sick note), not counting
    mentions like 'often without lawyers'."""
    return any(not _NOT_A_REFERRAL.search(answer[max(0, m.start() - 20) : m.start()]) for m in _ANY.finditer(answer))


def has_disclaimer(answer: str, domain: str = "") -> bool:
    return has_referral(answer, domain)
