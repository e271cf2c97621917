"""Write data/tools/{train,test}.jsonl: the shipped tool-use seed set (written by the tuneforge
authors: the tools, their schemas, the questions, the tool results and the answers below).

13 tools over the five domains; per domain four patterns, recorded in `meta.pattern`:
  single      one call answers the question
  parallel    two independent calls in one turn
  result      a call, the tool's result, then the answer written from it
  no_tool     a question the assistant answers in words although tools are declared
Each example declares its domain's tools. The split is by question (see `build`), every pattern in
both splits. Deterministic (seeded); `--check` rewrites to a
temporary folder and fails unless the shipped files are byte-identical (CI runs it).

Usage:  python scripts/make_tool_seed.py [--check]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tool(name: str, description: str, props: dict, required: list[str]) -> dict:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": props, "required": required, "additionalProperties": False}}}  # fmt: skip


S = {"type": "string"}
TOOLS = {
    "healthcare": [
        tool("drug_interactions", "Known interactions between two medicines", {"drug_a": S, "drug_b": S}, ["drug_a", "drug_b"]),
        tool("dosage_lookup", "Usual adult dose of a medicine for a condition", {"drug": S, "condition": S}, ["drug", "condition"]),
        tool("find_clinic", "Clinics of a specialty in a city", {"city": S, "specialty": S}, ["city", "specialty"]),
    ],
    "finance": [
        tool("get_exchange_rate", "Current exchange rate between two currencies (ISO codes)",
             {"base": {"type": "string", "pattern": "^[A-Z]{3}$"}, "quote": {"type": "string", "pattern": "^[A-Z]{3}$"}}, ["base", "quote"]),
        tool("loan_payment", "Monthly payment of a fixed-rate loan",
             {"principal": {"type": "number", "exclusiveMinimum": 0}, "annual_rate": {"type": "number", "minimum": 0},
              "years": {"type": "integer", "minimum": 1}}, ["principal", "annual_rate", "years"]),
        tool("stock_quote", "Latest price of a listed share", {"ticker": {"type": "string", "pattern": "^[A-Z]{1,5}$"}}, ["ticker"]),
    ],
    "legal": [
        tool("statute_lookup", "Text summary of a statute section", {"jurisdiction": S, "section": S}, ["jurisdiction", "section"]),
        tool("filing_deadline", "Deadline to file a kind of claim in a jurisdiction", {"jurisdiction": S, "claim": S}, ["jurisdiction", "claim"]),
    ],
    "travel": [
        tool("search_flights", "Direct flights between two airports on a date",
             {"origin": {"type": "string", "pattern": "^[A-Z]{3}$"}, "destination": {"type": "string", "pattern": "^[A-Z]{3}$"},
              "date": {"type": "string", "format": "date"}}, ["origin", "destination", "date"]),
        tool("weather_forecast", "Forecast for a city on a date", {"city": S, "date": {"type": "string", "format": "date"}}, ["city", "date"]),
        tool("hotel_availability", "Hotels with free rooms in a city for a number of nights",
             {"city": S, "nights": {"type": "integer", "minimum": 1, "maximum": 30}}, ["city", "nights"]),
    ],
    "education": [
        tool("course_catalog", "Courses a university offers in a subject", {"subject": S, "level": {"type": "string", "enum": ["introductory", "intermediate", "advanced"]}}, ["subject"]),
        tool("grade_average", "Weighted average of grades (0-100) with weights summing to 1",
             {"grades": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 100}, "minItems": 1},
              "weights": {"type": "array", "items": {"type": "number", "minimum": 0}, "minItems": 1}}, ["grades", "weights"]),
    ],
}  # fmt: skip

# per domain: (question, tool, arguments, tool result, answer from the result)
CALLS = {
    "healthcare": [
        ("Is it safe to take {a} together with {b}?", "drug_interactions", lambda a, b: {"drug_a": a, "drug_b": b},
         lambda a, b: {"severity": "moderate", "note": f"{b} can change how {a} works"},
         lambda a, b, r: f"The lookup reports a {r['severity']} interaction: {r['note']}. Ask your pharmacist before combining them."),
        ("What is the usual adult dose of {a} for {b}?", "dosage_lookup", lambda a, b: {"drug": a, "condition": b},
         lambda a, b: {"dose": "as on the label, lowest effective dose", "max_days": 5},
         lambda a, b, r: f"For {b}, the reference gives {r['dose']}, for at most {r['max_days']} days without seeing a doctor."),
        ("Find a {b} clinic in {a}.", "find_clinic", lambda a, b: {"city": a, "specialty": b},
         lambda a, b: {"clinics": [f"{a} Central {b.title()} Clinic", f"{b.title()} Care {a}"]},
         lambda a, b, r: f"Two {b} clinics in {a}: {r['clinics'][0]} and {r['clinics'][1]}."),
    ],
    "finance": [
        ("How many {b} is one {a} worth today?", "get_exchange_rate", lambda a, b: {"base": a, "quote": b},
         lambda a, b: {"rate": 1.08}, lambda a, b, r: f"One {a} is worth {r['rate']} {b} at the current rate."),
        ("What would I pay each month on a loan of {a} at {b}% over 10 years?", "loan_payment",
         lambda a, b: {"principal": a, "annual_rate": b, "years": 10}, lambda a, b: {"monthly_payment": round(a * 0.0106, 2)},
         lambda a, b, r: f"About {r['monthly_payment']} a month for a {a} loan at {b}% over 10 years."),
        ("What is {a} trading at?", "stock_quote", lambda a, b: {"ticker": a}, lambda a, b: {"price": 187.3, "currency": "USD"},
         lambda a, b, r: f"{a} last traded at {r['price']} {r['currency']}."),
    ],
    "legal": [
        ("What does section {b} of the {a} code say?", "statute_lookup", lambda a, b: {"jurisdiction": a, "section": b},
         lambda a, b: {"summary": "it sets the notice a landlord must give before ending a tenancy"},
         lambda a, b, r: f"Section {b} ({a}): {r['summary']}. Read the full text or ask a lawyer before relying on it."),
        ("How long do I have to file a {b} claim in {a}?", "filing_deadline", lambda a, b: {"jurisdiction": a, "claim": b},
         lambda a, b: {"deadline": "2 years", "from": "the date of the injury or breach"},
         lambda a, b, r: f"In {a}, a {b} claim must be filed within {r['deadline']} of {r['from']}."),
    ],
    "travel": [
        ("Are there direct flights from {a} to {b} on 2027-03-14?", "search_flights",
         lambda a, b: {"origin": a, "destination": b, "date": "2027-03-14"}, lambda a, b: {"flights": ["TP1940 07:05", "FR8312 18:40"]},
         lambda a, b, r: f"Two direct flights from {a} to {b} on 14 March 2027: {r['flights'][0]} and {r['flights'][1]}."),
        ("What weather should I expect in {a} on 2027-04-02?", "weather_forecast", lambda a, b: {"city": a, "date": "2027-04-02"},
         lambda a, b: {"high_c": 19, "low_c": 9, "rain": "light showers"},
         lambda a, b, r: f"In {a} on 2 April 2027: {r['low_c']}–{r['high_c']} °C with {r['rain']}; pack a light jacket."),
        ("Which hotels in {a} have rooms for {b} nights?", "hotel_availability", lambda a, b: {"city": a, "nights": b},
         lambda a, b: {"hotels": [f"Hotel {a} Plaza", "Riverside Inn"]},
         lambda a, b, r: f"For {b} nights in {a}: {r['hotels'][0]} and {r['hotels'][1]} have free rooms."),
    ],
    "education": [
        ("Which {b} courses in {a} does the university offer?", "course_catalog", lambda a, b: {"subject": a, "level": b},
         lambda a, b: {"courses": [f"{a.title()} 101", f"Foundations of {a}"]},
         lambda a, b, r: f"The {b} {a} courses are {r['courses'][0]} and {r['courses'][1]}."),
        ("My grades are {a} with weights {b}. What is my average?", "grade_average", lambda a, b: {"grades": a, "weights": b},
         lambda a, b: {"average": round(sum(g * w for g, w in zip(a, b)), 1)},
         lambda a, b, r: f"Your weighted average is {r['average']}."),
    ],
}  # fmt: skip

SLOTS = {  # (a, b) values per tool
    "drug_interactions": [("warfarin", "aspirin"), ("ibuprofen", "lisinopril"), ("sertraline", "tramadol"), ("metformin", "alcohol"), ("simvastatin", "clarithromycin"), ("levothyroxine", "calcium")],
    "dosage_lookup": [("ibuprofen", "back pain"), ("paracetamol", "fever"), ("loratadine", "hay fever"), ("omeprazole", "heartburn"), ("naproxen", "period pain"), ("cetirizine", "hives")],
    "find_clinic": [("Lisbon", "dermatology"), ("Leeds", "physiotherapy"), ("Austin", "cardiology"), ("Munich", "paediatrics"), ("Toronto", "orthopaedics"), ("Dublin", "ophthalmology")],
    "get_exchange_rate": [("EUR", "USD"), ("GBP", "JPY"), ("USD", "CAD"), ("CHF", "EUR"), ("AUD", "NZD"), ("SEK", "NOK")],
    "loan_payment": [(20000, 5.5), (150000, 3.9), (8000, 7.2), (250000, 4.4), (12000, 6.1), (60000, 4.9)],
    "stock_quote": [("AAPL", None), ("MSFT", None), ("SAP", None), ("NVDA", None), ("ASML", None), ("KO", None)],
    "statute_lookup": [("California", "1946"), ("New York", "235-b"), ("Texas", "92.006"), ("Ontario", "37"), ("Florida", "83.56"), ("Ireland", "34")],
    "filing_deadline": [("England", "personal injury"), ("California", "breach of contract"), ("New York", "medical malpractice"), ("Texas", "property damage"), ("Ontario", "wrongful dismissal"), ("Scotland", "defamation")],
    "search_flights": [("LIS", "OPO"), ("MAD", "BCN"), ("JFK", "BOS"), ("LHR", "DUB"), ("FRA", "VIE"), ("SFO", "SEA")],
    "weather_forecast": [("Lisbon", None), ("Kyoto", None), ("Reykjavik", None), ("Cape Town", None), ("Vancouver", None), ("Seville", None)],
    "hotel_availability": [("Porto", 3), ("Prague", 2), ("Chicago", 4), ("Edinburgh", 5), ("Lyon", 1), ("Osaka", 7)],
    "course_catalog": [("statistics", "introductory"), ("organic chemistry", "intermediate"), ("machine learning", "advanced"), ("linguistics", "introductory"), ("economics", "intermediate"), ("music theory", "advanced")],
    "grade_average": [([72, 85, 90], [0.3, 0.3, 0.4]), ([60, 75], [0.5, 0.5]), ([88, 92, 79], [0.2, 0.5, 0.3]), ([55, 70, 95], [0.25, 0.25, 0.5]), ([81, 67], [0.6, 0.4]), ([90, 94, 87, 78], [0.25, 0.25, 0.25, 0.25])],
}  # fmt: skip

NO_TOOL = {  # questions a declared tool does not answer: the assistant answers in words
    "healthcare": [
        ("What does 'take with food' on a label mean?", "Take the medicine during a meal or just after it; food protects the stomach or helps the body absorb some medicines."),
        ("Why should I finish a course of antibiotics?", "Stopping early can leave the hardier bacteria alive, so the infection may return and resist the drug. Follow your prescriber's instructions."),
        ("What is the difference between a generic and a brand-name medicine?", "A generic has the same active ingredient, strength and effect as the brand; it differs in name, price and sometimes inactive ingredients."),
        ("How do I store insulin I am not using yet?", "Keep unopened insulin in the fridge (2–8 °C), never frozen; the pen in use can stay at room temperature for about four weeks."),
        ("What should I bring to a first appointment with a specialist?", "Your referral letter, a list of your medicines and doses, earlier test results and the questions you want to ask."),
        ("Hello! Can you help me with health questions?", "Yes. I can look up drug interactions, usual doses and clinics, and explain general health topics. For a diagnosis, see a clinician."),
        ("What does BMI measure?", "Body mass index is weight in kilograms divided by the square of height in metres; it screens for weight categories but does not measure body fat directly."),
        ("Is a fever always a reason to see a doctor?", "Not always: many fevers pass in a few days. Seek care for a very high or lasting fever, a stiff neck, confusion, trouble breathing, or a fever in a baby under three months."),
        ("Thanks, that was helpful.", "You're welcome. Take care, and ask if anything else comes up."),
        ("What is a side effect?", "An effect of a medicine other than the one intended, such as drowsiness from an antihistamine; most are mild, some need a doctor."),
    ],
    "finance": [
        ("What is compound interest?", "Interest earned on both the original amount and the interest already added, so savings grow faster the longer they stay invested."),
        ("What does APR mean?", "Annual percentage rate: the yearly cost of borrowing, including interest and most fees, which lets you compare loans."),
        ("Should I keep an emergency fund?", "Yes: a common guide is three to six months of essential spending in an easy-access account, so a surprise bill does not become debt."),
        ("What is the difference between a stock and a bond?", "A stock is a share of ownership in a company; a bond is a loan to a company or government that pays interest and returns the principal."),
        ("Hi, what can you do?", "I can fetch exchange rates and share prices and work out loan payments, and explain financial terms."),
        ("What is diversification?", "Spreading money across different assets so that a loss in one does not sink the whole portfolio."),
        ("What is inflation?", "The general rise in prices over time, which lowers what a fixed amount of money can buy."),
        ("What is a credit score used for?", "Lenders use it to judge how likely you are to repay; a higher score usually means better rates."),
        ("Thank you!", "Glad to help. Good luck with your plans."),
        ("What is a budget?", "A plan of expected income and spending over a period, used to make sure spending stays within income and goals get funded."),
    ],
    "legal": [
        ("What is the difference between civil and criminal law?", "Civil law settles disputes between people or organisations, usually with compensation; criminal law deals with offences against the state and can bring punishment."),
        ("What does 'statute of limitations' mean?", "The time limit for starting legal proceedings; after it passes, a claim usually can no longer be brought."),
        ("What is a power of attorney?", "A legal document that lets someone act for you in financial or health matters, for example if you lose capacity."),
        ("Do I need a lawyer for small claims court?", "Usually not: small claims courts are designed for people to represent themselves, though advice can still help."),
        ("Hello, can you help with legal questions?", "I can look up statute summaries and filing deadlines and explain legal terms; for advice on your case, consult a lawyer."),
        ("What is mediation?", "A voluntary process where a neutral mediator helps the parties reach their own agreement, often faster and cheaper than court."),
        ("What is a will?", "A document that says how your property is shared after your death and who carries out your wishes."),
        ("What does 'plaintiff' mean?", "The person or organisation that starts a civil lawsuit; the other side is the defendant."),
        ("Thanks for the explanation.", "You're welcome. Remember that general information is not advice on your own case."),
        ("What is a contract?", "An agreement the law will enforce: an offer, its acceptance, something of value exchanged and the intention to be bound."),
    ],
    "travel": [
        ("What documents do I need for an international flight?", "A valid passport, any visa the destination requires, your booking and sometimes proof of onward travel or health documents."),
        ("How early should I get to the airport?", "About two hours before a short-haul international flight and three before a long-haul one; less for domestic flights."),
        ("What is travel insurance for?", "It covers costs such as medical care abroad, cancelled trips and lost luggage."),
        ("Can I bring liquids in hand luggage?", "Usually in containers of up to 100 ml, all in one clear resealable bag of about one litre."),
        ("Hi! Can you plan trips?", "I can search direct flights, check forecasts and find hotels with free rooms, and help you plan around them."),
        ("What is jet lag?", "Tiredness and poor sleep after crossing time zones, while your body clock catches up; daylight at the new place helps."),
        ("Should I exchange money before I travel?", "A little for arrival is handy; card payments and local ATMs often give better rates than airport kiosks."),
        ("What does 'layover' mean?", "A stop between two flights of one journey, where you change planes."),
        ("Thanks a lot!", "Have a great trip!"),
        ("What is a travel adapter?", "A plug converter that lets your charger fit the sockets of another country; check voltage too."),
    ],
    "education": [
        ("What is a credit hour?", "A unit for one hour of class a week over a term; courses are usually worth three or four."),
        ("How do prerequisites work?", "A prerequisite is a course you must pass before enrolling in a later one that builds on it."),
        ("What is the difference between a major and a minor?", "A major is your main field of study with most of your credits; a minor is a smaller second field."),
        ("How can I study more effectively?", "Space your study over days, test yourself instead of rereading, and explain ideas in your own words."),
        ("Hello, what can you help with?", "I can look up courses in the catalogue and work out weighted grade averages, and answer questions about studying."),
        ("What is a GPA?", "Grade point average: the mean of your course grades on a points scale, weighted by credits."),
        ("What is office hours?", "Times a lecturer sets aside for students to drop in with questions."),
        ("Should I take a gap year?", "It can help if you have a plan — work, volunteering or travel — and a route back into study."),
        ("Thank you.", "You're welcome. Good luck with your studies."),
        ("What is a syllabus?", "The course outline: topics, readings, assessments, deadlines and grading rules."),
    ],
}  # fmt: skip


def _call(tool_name: str, args: dict, k: int) -> dict:
    return {"id": f"call_{k}", "type": "function", "function": {"name": tool_name, "arguments": args}}


def _fmt(x) -> str:
    return ", ".join(map(str, x)) if isinstance(x, list) else str(x)


def examples_for(domain: str, rows: list, no_tool: list) -> list[dict]:
    """The examples of one domain and split: `rows` are (question, tool, arguments, result, answer, a, b)."""
    out = []
    for n, (q, name, mk, res, ans, a, b) in enumerate(rows):
        question = q.format(a=_fmt(a), b=_fmt(b))
        user = {"role": "user", "content": question}
        call = {"role": "assistant", "content": "", "tool_calls": [_call(name, mk(a, b), 0)]}
        out.append({"pattern": "single", "messages": [user, call]})
        result = res(a, b)
        out.append({"pattern": "result", "messages": [
            user, call, {"role": "tool", "tool_call_id": "call_0", "name": name, "content": json.dumps(result)},
            {"role": "assistant", "content": ans(a, b, result)}]})  # fmt: skip
        if len(rows) > 1:  # parallel: this question and the next one of the same split, asked together
            q2, name2, mk2, _, _, a2, b2 = rows[(n + 1) % len(rows)]
            second = q2.format(a=_fmt(a2), b=_fmt(b2))
            out.append({"pattern": "parallel", "messages": [{"role": "user", "content": f"{question} Also: {second[0].lower()}{second[1:]}"}, {
                "role": "assistant", "content": "", "tool_calls": [_call(name, mk(a, b), 0), _call(name2, mk2(a2, b2), 1)]}]})  # fmt: skip
    for q, a in no_tool:
        out.append(
            {"pattern": "no_tool", "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        )
    system = {
        "role": "system",
        "content": f"You are a {domain} assistant. Call a tool when it answers the question; otherwise answer directly.",
    }
    return [{"messages": [system, *e["messages"]], "tools": TOOLS[domain], "domain": domain, "source": "tuneforge-seed",
             "meta": {"pattern": e["pattern"]}} for e in out]  # fmt: skip


def build() -> dict[str, list[dict]]:
    """Split by question, not by example: one of each tool's six argument sets (and its single, result
    and parallel examples) and a fifth of the no-tool questions are test, so no test question is
    seen in training, in any pattern."""
    rng = random.Random(31)
    split: dict[str, list[dict]] = {"train": [], "test": []}
    for domain in TOOLS:
        rows = {"train": [], "test": []}
        for q, name, mk, res, ans in CALLS[domain]:
            held = rng.randrange(len(SLOTS[name]))
            for k, (a, b) in enumerate(SLOTS[name]):
                rows["test" if k == held else "train"].append((q, name, mk, res, ans, a, b))
        questions = list(NO_TOOL[domain])
        rng.shuffle(questions)
        no_tool = {"test": questions[:2], "train": questions[2:]}
        for part in ("train", "test"):
            counts: dict[str, int] = {}
            for r in examples_for(domain, rows[part], no_tool[part]):
                k = counts[r["meta"]["pattern"]] = counts.get(r["meta"]["pattern"], -1) + 1
                split[part].append({"id": f"tools-{domain}-{part}-{r['meta']['pattern']}-{k:02d}", **r})
    return split


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for part, rows in build().items():
        path = folder / f"{part}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        paths.append(path)
    return paths


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="fail unless data/tools matches what this script writes")
    args = ap.parse_args()
    shipped = ROOT / "data" / "tools"
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            for path in write(Path(tmp)):
                if path.read_bytes() != (shipped / path.name).read_bytes():
                    print(f"data/tools/{path.name} differs from what scripts/make_tool_seed.py writes; run it",
                          file=sys.stderr)  # fmt: skip
                    return 1
        print("data/tools matches scripts/make_tool_seed.py")
        return 0
    for path in write(shipped):
        print(f"wrote {path.relative_to(ROOT)}: {sum(1 for _ in path.open())} examples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
