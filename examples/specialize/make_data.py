"""Generate the synthetic train and held-out sets for ticket-triage, claim-extractor and
claim-decision.

No labeled dataset that fits these jobs ships in a PyPI package we can use offline, so these
are synthetic: templates with slots, filled from fixed lists by a seeded random generator
(seed 20261123), so every run writes the same files. Held-out examples come from the same
templates, and no held-out input appears in the training set. They measure whether a specialist
learned these templates' conventions, not how it does on real customers' words.

claim-decision's labels follow the shipped policy wording (agents/corpora/home-policy): a cause the
wording excludes is denied; a covered claim whose payout (the amount less the deductible) is above
1,000 euros goes to an adjuster (investigate); any other covered claim is paid. Its inputs are
what the claim-triage workflow's decide node sends: the claim, its fields, severity and payout.

    python examples/specialize/make_data.py     # writes examples/specialize/*.jsonl
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20261123

TEAMS = {
    "billing": [
        "I was charged {n} times for my {month} invoice.",
        "Please refund the {amount} euros you took from my card.",
        "My invoice {ref} shows the wrong VAT number.",
        "Why did my subscription price go up to {amount} euros?",
        "The payment for order {ref} was taken twice.",
        "I need a copy of the invoice for {month}.",
    ],
    "technical": [
        "The app crashes when I open the {screen} screen.",
        "I get error {code} when I try to upload a file.",
        "Sync has stopped working since the {month} update.",
        "The {screen} page loads forever and then shows a blank page.",
        "Two-factor codes never arrive on my phone.",
        "The export to CSV produces an empty file.",
    ],
    "account": [
        "Please change the email address on my account to the new one.",
        "I want to cancel my plan at the end of {month}.",
        "How do I add a second user to our team account?",
        "Please upgrade us from the basic plan to the business plan.",
        "I forgot which username I registered with.",
        "Delete my profile and all my personal data, please.",
    ],
    "shipping": [
        "My parcel {ref} has not arrived after {n} weeks.",
        "The tracking page for {ref} has not changed in {n} days.",
        "The box arrived damaged and the {item} is broken.",
        "You sent the parcel to my old address.",
        "The courier left my {item} outside in the rain.",
        "Can I change the delivery date for order {ref}?",
    ],
}
URGENT = [
    " Nobody in our office can work.",
    " We are losing sales every hour.",
    " This is blocking our whole team right now.",
]
LOW = [" No rush, whenever you have time.", " Just asking for later.", " It is not urgent."]

CLAIMS = {
    "property": [
        "Policy {policy}. On {date} a {peril} damaged our {room}. The quote is {amount_text}.",
        "{peril_cap} in the {room} on {date}, policy {policy}; the builder asks {amount_text}.",
    ],
    "auto": [
        "My car (policy {policy}) was hit in a car park on {date}; the garage wants {amount_text}.",
        "Policy {policy}: collision on the motorway on {date}, repair estimate {amount_text}.",
    ],
    "health": [
        "Policy {policy}. I was treated at the hospital on {date} and paid {amount_text}.",
        "Medical bill of {amount_text} after surgery on {date}, policy {policy}.",
    ],
    "travel": [
        "Policy {policy}. My flight on {date} was cancelled and the new ticket cost {amount_text}.",
        "Luggage lost on {date} on my holiday, policy {policy}, worth {amount_text}.",
    ],
}
PREFIX = {"property": "HP", "auto": "AU", "health": "HE", "travel": "TR"}
PERILS = ["storm", "burst pipe", "fire", "flood", "fallen tree", "break-in"]
ROOMS = ["kitchen", "roof", "attic", "living room", "bathroom", "garage"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]  # fmt: skip


def tickets(rng: random.Random) -> list[dict[str, object]]:
    made = []
    for team, templates in TEAMS.items():
        for template in templates:
            for _ in range(12):
                text = template.format(
                    n=rng.choice(["two", "three", "2", "3"]),
                    month=rng.choice(MONTHS),
                    amount=rng.randint(9, 480),
                    ref=f"#{rng.randint(10000, 99999)}",
                    screen=rng.choice(["settings", "reports", "billing", "profile", "home"]),
                    code=rng.choice([500, 502, 403, 404, 413]),
                    item=rng.choice(["lamp", "printer", "monitor", "chair", "kettle"]),
                )
                roll = rng.random()
                priority = "normal"
                if roll < 0.25:
                    text, priority = text + rng.choice(URGENT), "urgent"
                elif roll < 0.45:
                    text, priority = text + rng.choice(LOW), "low"
                made.append({"input": text, "output": {"team": team, "priority": priority}})
    return made


def claims(rng: random.Random) -> list[dict[str, object]]:
    made = []
    for claim_type, templates in CLAIMS.items():
        for template in templates:
            for _ in range(30):
                amount = rng.choice([rng.randint(80, 900), rng.randint(1000, 9000)])
                date = f"{rng.randint(1, 28)} {rng.choice(MONTHS)}"
                policy = f"{PREFIX[claim_type]}-{rng.randint(10000, 99999)}"
                peril = rng.choice(PERILS)
                text = template.format(
                    policy=policy,
                    date=date,
                    peril=peril,
                    peril_cap=peril.capitalize(),
                    room=rng.choice(ROOMS),
                    amount_text=rng.choice([f"{amount:,} euros", f"{amount} EUR", f"€{amount}"]),
                )
                output = {
                    "policy_number": policy,
                    "claim_type": claim_type,
                    "incident_date": date,
                    "amount": amount,
                }
                made.append({"input": text, "output": output})
    return made


# (what happened, why it is excluded or None when covered, deductible)
CAUSES = [
    ("a storm tore tiles off the roof", None, 250),
    ("a pipe burst under the kitchen sink and flooded the floor", None, 500),
    ("a fire in the kitchen blackened the walls and ceiling", None, 250),
    ("burglars broke in and took our laptops; the police have the report", None, 250),
    ("a neighbour's tree fell onto the conservatory in high wind", None, 250),
    ("a delivery van reversed into the front wall of the house", None, 250),
    ("the washing machine leaked and ruined the hall floor", None, 500),
    ("lightning struck the chimney and it collapsed", None, 250),
    ("the storm blew down the garden fence", "storm damage to fences is not covered", 250),
    ("black mould has spread behind the bathroom tiles", "mould is excluded", 250),
    ("the window frames have rotted after years of damp", "rot and damp are excluded", 250),
    ("our dog chewed through the sofa and the living room carpet", "pet damage is excluded", 250),
    ("mice gnawed through the cables in the attic", "damage by vermin is excluded", 250),
    ("a pipe burst while the house stood empty for four months",
     "the home was unoccupied for more than 60 days", 500),
    ("the flood filled the garden shed that stands apart from the house",
     "flood damage to detached outbuildings is excluded", 250),
    ("the old roof tiles have worn out and now let the rain in", "wear and tear is excluded", 250),
]  # fmt: skip


def severity(amount: int) -> str:
    return "minor" if amount < 1000 else "moderate" if amount < 5000 else "severe"


def decisions(rng: random.Random) -> list[dict[str, object]]:
    made = []
    for cause, excluded, deductible in CAUSES:
        for _ in range(12):
            amount = rng.choice([rng.randint(300, 1200), rng.randint(1300, 9000)])
            date = f"{rng.randint(1, 28)} {rng.choice(MONTHS)}"
            policy = f"HP-{rng.randint(10000, 99999)}"
            claim = f"Policy {policy}. On {date} {cause}. The repair costs {amount} euros."
            fields = {
                "policy_number": policy,
                "claim_type": "property",
                "incident_date": date,
                "amount": amount,
            }
            payout = max(0, amount - deductible)
            text = (
                f"Claim: {claim}\nFields: {json.dumps(fields)}. Severity: {severity(amount)}. "
                f"Payout: {payout}."
            )
            if excluded:
                decision, why = "deny", f"Not covered: {excluded} [1]."
            elif payout > 1000:
                decision, why = (
                    "investigate",
                    "Covered, but a payout above 1,000 euros is checked by an adjuster [1].",
                )
            else:
                decision, why = "pay", "Covered damage, payout within the limits [1]."
            made.append({"input": text, "output": {"decision": decision, "rationale": why}})
    return made


def split(rows: list[dict[str, object]], heldout: int, rng: random.Random) -> tuple[list, list]:
    unique = list({str(r["input"]): r for r in rows}.values())
    rng.shuffle(unique)
    return unique[heldout:], unique[:heldout]


def write(name: str, rows: list[dict[str, object]]) -> None:
    path = HERE / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{path.relative_to(HERE.parent.parent)}: {len(rows)} examples")


def main() -> None:
    rng = random.Random(SEED)
    train, held = split(tickets(rng), 60, rng)
    write("ticket-triage.train", train)
    write("ticket-triage.heldout", held)
    train, held = split(claims(rng), 40, rng)
    write("claim-extractor.train", train)
    write("claim-extractor.heldout", held)
    train, held = split(decisions(rng), 48, rng)
    write("claim-decision.train", train)
    write("claim-decision.heldout", held)


if __name__ == "__main__":
    main()
