"""Generate the synthetic train, held-out and out-of-distribution sets of the shipped specialists:
ticket-triage, claim-extractor, claim-severity, sentiment and claim-decision.

No labeled dataset that fits these jobs ships in a PyPI package we can use offline, so these
are synthetic: sentences composed from parts (openers, the facts in varying order and wording,
distracting numbers, sign-offs), filled from fixed lists by a seeded random generator, so every
run writes the same files. Each specialist gets three sets:

- ``NAME.train.jsonl``: what `cadre specialize` trains on;
- ``NAME.heldout.jsonl``: the same family of sentences, no input shared with training (the
  in-distribution score);
- ``NAME.ood.jsonl``: another family written in a different style (forms, chat messages, formal
  letters, other vocabulary), never seen in training (the out-of-distribution score).

The extractor's policy numbers do not always carry the prefix of the claim type, amounts are
written in figures (with and without separators and currency signs) and in words, dates in
several formats or not at all, and most claims carry other numbers (phone, customer and order
numbers, years) that are not the amount or the policy. claim-severity is labeled on the same
claims by what happened (each event has its severity, and amounts fall in that severity's range).

claim-decision's labels follow the shipped policy wording (agents/corpora/home-policy): a cause the
wording excludes is denied; a covered claim whose payout (the amount less the deductible) is above
1,000 euros goes to an adjuster (investigate); any other covered claim is paid. Its inputs are
what the claim-triage workflow's decide node sends: the claim, its fields, severity and payout.

    python examples/specialize/make_data.py     # writes examples/specialize/*.jsonl
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20261123
Row = dict[str, object]

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]  # fmt: skip
NAMES = ["Anna Visser", "Tom Becker", "M. Jansen", "Priya Shah", "Luis Moreno", "Eva Novak",
         "J. Smith", "Sara Lind", "Omar Haddad", "Kate O'Brien"]  # fmt: skip
ONES = ["", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen"]  # fmt: skip
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def words(n: int) -> str:
    """An amount in English words: 2350 -> 'two thousand three hundred and fifty'."""

    def below_1000(k: int) -> str:
        hundreds, rest = divmod(k, 100)
        parts = [f"{ONES[hundreds]} hundred"] if hundreds else []
        if rest:
            tens = (
                ONES[rest]
                if rest < 20
                else TENS[rest // 10] + (f"-{ONES[rest % 10]}" * bool(rest % 10))
            )
            parts.append(("and " if hundreds else "") + tens)
        return " ".join(parts)

    thousands, rest = divmod(n, 1000)
    head = f"{below_1000(thousands)} thousand" if thousands else ""
    tail = below_1000(rest)
    if head and tail and rest < 100:
        tail = "and " + tail
    return " ".join(p for p in (head, tail) if p)


def pick(rng: random.Random, options: list[str]) -> str:
    return rng.choice(options)


# ---------------------------------------------------------------- claims (extractor, severity)

PREFIX = {"property": "HP", "auto": "AU", "health": "HE", "travel": "TR"}

# (what happened, severity): worded for the training family...
EVENTS = {
    "property": [
        ("a pipe burst under the kitchen sink and soaked the floor", "moderate"),
        ("a storm tore a few tiles off the roof", "moderate"),
        ("burglars broke in and took the television and two laptops", "moderate"),
        ("a small fire in the garage blackened one wall", "moderate"),
        ("water came through the bathroom ceiling from the flat above", "moderate"),
        ("a tree fell on the garden shed", "moderate"),
        ("a cup of coffee stained the new sofa", "minor"),
        ("the wind cracked one pane of the kitchen window", "minor"),
        ("a fire gutted the ground floor and we cannot live in the house", "major"),
        ("a flood ruined the whole ground floor and we had to move out", "major"),
    ],
    "auto": [
        ("my car was hit from behind at a red light", "moderate"),
        ("I reversed into a post in a car park and dented the bumper", "minor"),
        ("someone scratched the side of my van overnight", "minor"),
        ("a stone cracked the windscreen on the motorway", "minor"),
        ("hail dented the bonnet and the roof of the car", "moderate"),
        ("a lorry pushed my car off the road and it is a write-off", "major"),
        ("I crashed into a wall, the car is written off and I broke my arm", "major"),
    ],
    "health": [
        ("I broke my wrist skiing and needed a cast", "moderate"),
        ("my son had his appendix removed in an emergency operation", "major"),
        ("I needed emergency dental treatment for a cracked tooth", "minor"),
        ("I had six sessions of physiotherapy for my back", "minor"),
        ("I was in intensive care for a week after a heart attack", "major"),
    ],
    "travel": [
        ("my flight was cancelled and I had to buy a new ticket", "minor"),
        ("my suitcase never arrived at the airport", "moderate"),
        ("I fell ill abroad and missed the tour I had paid for", "moderate"),
        ("my passport and wallet were stolen on holiday", "minor"),
        ("I was injured in a coach crash abroad and flown home", "major"),
    ],
}
# ...and in another voice for the out-of-distribution family.
EVENTS_OOD = {
    "property": [
        ("washing machine hose split, kitchen floor under water", "moderate"),
        ("hailstones smashed the conservatory roof", "moderate"),
        ("thieves forced the back door and emptied the jewellery box", "moderate"),
        ("the chimney fire spread to the loft, house unliveable", "major"),
        ("toddler drew on the rented wallpaper with marker", "minor"),
    ],
    "auto": [
        ("scooter knocked over by a delivery van, mirror snapped", "minor"),
        ("car caught fire on the ring road, total loss", "major"),
        ("rear-ended in traffic, boot will not close", "moderate"),
        ("wing mirror clipped by a passing bus", "minor"),
    ],
    "health": [
        ("ambulance and two nights in hospital after a bike fall, concussion", "major"),
        ("new glasses after the old ones broke at work", "minor"),
        ("knee scan and three specialist visits", "moderate"),
    ],
    "travel": [
        ("connecting train missed because of a strike, hotel night needed", "minor"),
        ("cruise cut short when my mother was taken to hospital at home", "moderate"),
        ("camera bag stolen from the hotel lobby", "minor"),
        ("broke my leg on a hike abroad, operated there and flown back on a stretcher", "major"),
    ],
}
AMOUNTS = {"minor": (60, 950), "moderate": (1000, 9500), "major": (12000, 60000)}
STREETS = ["Station Road", "Elm Street", "Kerkstraat", "Rue Haute", "Mill Lane"]


@dataclass(frozen=True)
class Facts:
    """What one claim says, before it is worded."""

    claim_type: str
    event: str
    policy: str
    date: str | None
    money: str | None


def policy_number(rng: random.Random, claim_type: str) -> str:
    prefix = PREFIX[claim_type] if rng.random() < 0.7 else pick(rng, list(PREFIX.values()))
    return f"{prefix}-{rng.randint(10000, 99999)}"


def amount_text(rng: random.Random, amount: int) -> str:
    styles = [
        f"{amount:,} euros", f"{amount} euros", f"{amount} EUR", f"EUR {amount:,}",
        f"€{amount:,}", f"€ {amount}", f"{amount:,}.00 euros", f"{words(amount)} euros",
    ]  # fmt: skip
    return pick(rng, styles)


def date_text(rng: random.Random) -> str | None:
    """A date as a claimant writes it, or None (no date given)."""
    day, month = rng.randint(1, 28), rng.randrange(12)
    suffix = "th" if 4 <= day <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    styles = [
        f"{day} {MONTHS[month]}", f"{MONTHS[month]} {day}", f"the {day}{suffix} of {MONTHS[month]}",
        f"{day:02d}/{month + 1:02d}", f"{day} {MONTHS[month][:3]}", "last Monday", "yesterday",
    ]  # fmt: skip
    return None if rng.random() < 0.1 else pick(rng, styles)


def distraction(rng: random.Random) -> str:
    return pick(rng, [
        f"You can call me on 06-{rng.randint(10000000, 99999999)}.",
        f"My customer number is C{rng.randint(100000, 999999)}.",
        f"I have been insured with you for {rng.randint(2, 19)} years.",
        f"We live at {rng.randint(2, 180)} {pick(rng, STREETS)}.",
        f"The invoice number is {rng.randint(2020, 2026)}-{rng.randint(100, 999)}.",
        "",
        "",
    ])  # fmt: skip


def claim_a(rng: random.Random, facts: Facts) -> str:
    """The training family: a customer's message with the facts in varying order."""
    event, policy, date, money = facts.event, facts.policy, facts.date, facts.money
    if date is None:
        when = ""
    elif date in ("last Monday", "yesterday"):
        when = date
    else:
        when = f"on {date}"
    event = event[0].upper() + event[1:]
    if when and rng.random() < 0.5:
        happened = f"{when[0].upper()}{when[1:]}, {event[0].lower()}{event[1:]}."
    else:
        happened = f"{event} {when}".strip() + "."
    if money is None:
        cost = pick(rng, ["I do not have a quote yet.", "I will send the bill later."])
    else:
        cost = pick(rng, [f"The repair quote is {money}.", f"It will cost {money} to put right.",
                          f"The bill came to {money}.", f"I paid {money}.", f"They ask {money}.",
                          f"Total cost: {money}."])  # fmt: skip
    ref = pick(rng, [f"Policy {policy}.", f"My policy number is {policy}.", f"Policy no. {policy}.",
                     f"Ref: {policy}.", f"This is about policy #{policy}."])  # fmt: skip
    parts = [happened, cost, distraction(rng)]
    parts.insert(rng.choice([0, 0, 1, 2, 3]), ref)
    opener = pick(rng, ["", "", "Hello,", "Hi there.", "Good morning,", "Dear claims team,"])
    closer = pick(rng, ["", "", "Thanks.", f"Kind regards, {pick(rng, NAMES)}",
                        "Please let me know what you need."])  # fmt: skip
    return " ".join(p for p in [opener, *parts, closer] if p)


def claim_b(rng: random.Random, facts: Facts) -> str:
    """The out-of-distribution family: forms, chat messages and formal letters."""
    claim_type, event, policy, date = facts.claim_type, facts.event, facts.policy, facts.date
    money = facts.money
    style = rng.randrange(3)
    if style == 0:
        lines = ["CLAIM FORM", f"Policy: {policy}", f"Type of loss: {event}",
                 f"Date of loss: {date or 'not sure'}",
                 f"Amount claimed: {money or 'to follow'}"]  # fmt: skip
        body = lines[1:]
        rng.shuffle(body)
        return "\n".join([lines[0], *body])
    if style == 1:
        when = f" {date}" if date else ""
        cost = f" cost me {money}" if money else " no idea of cost yet"
        return f"hey so{when} {event}..{cost}. pol {policy.lower()} thx"
    when = "" if not date else f" {date}" if date in ("last Monday", "yesterday") else f" on {date}"
    cost = f" The total cost amounts to {money}." if money else " I shall forward the invoice."
    return (
        f"Dear Sir or Madam, I wish to make a claim under my {claim_type} insurance, reference "
        f"{policy}. The following occurred{when}: {event}."
        f"{cost} Yours faithfully, {pick(rng, NAMES)}"
    )


def claim_rows(
    rng: random.Random,
    events: dict[str, list[tuple[str, str]]],
    write: Callable[..., str],
    count: int,
) -> list[tuple[Row, Row]]:
    """(extractor row, severity row) pairs: the same claim labeled for both jobs."""
    made = []
    for _ in range(count):
        claim_type = pick(rng, list(events))
        event, severity = rng.choice(events[claim_type])
        low, high = AMOUNTS[severity]
        amount = rng.randint(low, high)
        if rng.random() < 0.5:
            amount = round(amount, -1 if amount < 1000 else -2)
        policy = policy_number(rng, claim_type)
        date = date_text(rng)
        money = None if rng.random() < 0.08 else amount_text(rng, amount)
        text = write(rng, Facts(claim_type, event, policy, date, money))
        fields = {
            "policy_number": policy,
            "claim_type": claim_type,
            "incident_date": date or "unknown",
            "amount": amount if money else 0,
        }
        made.append(({"input": text, "output": fields},
                     {"input": text, "output": {"severity": severity}}))  # fmt: skip
    return made


# ---------------------------------------------------------------- tickets and sentiment

TEAMS = {
    "billing": [
        "I was charged {n} times for my {month} invoice.",
        "Please refund the {amount} euros you took from my card.",
        "My invoice {ref} shows the wrong VAT number.",
        "Why did my subscription price go up to {amount} euros?",
        "The payment for order {ref} was taken twice.",
        "I need a copy of the invoice for {month}.",
        "There is a charge of {amount} euros on my statement that I do not recognise.",
        "Can I pay by bank transfer instead of credit card from {month}?",
        "You billed us for {n} seats but we only have one user.",
        "My direct debit failed and now there is a late fee.",
    ],
    "technical": [
        "The app crashes when I open the {screen} screen.",
        "I get error {code} when I try to upload a file.",
        "Sync has stopped working since the {month} update.",
        "The {screen} page loads forever and then shows a blank page.",
        "Two-factor codes never arrive on my phone.",
        "The export to CSV produces an empty file.",
        "I cannot log in, it says my session expired every time.",
        "Your API returns {code} for every request since this morning.",
        "Notifications stopped working on Android after the update.",
        "The search box returns nothing even for exact names.",
    ],
    "account": [
        "Please change the email address on my account to the new one.",
        "I want to cancel my plan at the end of {month}.",
        "How do I add a second user to our team account?",
        "Please upgrade us from the basic plan to the business plan.",
        "I forgot which username I registered with.",
        "Delete my profile and all my personal data, please.",
        "Can you merge my two accounts into one?",
        "I would like to downgrade to the free plan.",
        "Please transfer ownership of the workspace to my colleague.",
        "How can I change the name on my profile?",
    ],
    "shipping": [
        "My parcel {ref} has not arrived after {n} weeks.",
        "The tracking page for {ref} has not changed in {n} days.",
        "The box arrived damaged and the {item} is broken.",
        "You sent the parcel to my old address.",
        "The courier left my {item} outside in the rain.",
        "Can I change the delivery date for order {ref}?",
        "Only half of my order arrived, the {item} is missing.",
        "The parcel says delivered but it is not at my door.",
        "How much does express delivery to Belgium cost?",
        "I received someone else's {item} instead of mine.",
    ],
}
TEAMS_OOD = {
    "billing": [
        "hi, double payment on my card?? need money back asap",
        "Quick one: the receipt you emailed lists last year's price, not what I paid.",
        "Our finance department needs all {month} credit notes re-issued with the PO number.",
        "why am i paying for premium when i never signed up for it",
    ],
    "technical": [
        "website just spins, tried 3 browsers",
        "Since your maintenance window the webhook deliveries fail with a TLS handshake error.",
        "When exporting the {screen} report the PDF comes out with every page blank.",
        "password reset link says invalid token every time i click it",
    ],
    "account": [
        "need to swap the admin on our org to someone else, I'm leaving the company",
        "Kindly close my membership once the current term ends.",
        "Is it possible to rename our company workspace?",
        "pls remove my old phone number from my profile",
    ],
    "shipping": [
        "where's my stuff? ordered {n} weeks ago, nothing",
        "The driver handed my package to a neighbour I do not know.",
        "Box came crushed, the {item} inside is in pieces.",
        "tracking for {ref} stuck on 'in transit' forever",
    ],
}
URGENT = [" Nobody in our office can work.", " We are losing sales every hour.",
          " This is blocking our whole team right now.", " Please fix this today, it is urgent.",
          " Our shop cannot take payments until this is solved."]  # fmt: skip
LOW = [" No rush, whenever you have time.", " Just asking for later.", " It is not urgent.",
       " Any time next week is fine."]  # fmt: skip
URGENT_OOD = [" URGENT - whole warehouse stopped!!", " every minute this is down costs us money"]
LOW_OOD = [" (low priority, just curious)", " whenever suits"]


def fill(rng: random.Random, template: str) -> str:
    return template.format(
        n=pick(rng, ["two", "three", "2", "3", "four"]),
        month=pick(rng, MONTHS),
        amount=rng.randint(9, 480),
        ref=f"#{rng.randint(10000, 99999)}",
        screen=pick(rng, ["settings", "reports", "billing", "profile", "home"]),
        code=pick(rng, [500, 502, 403, 404, 413]),
        item=pick(rng, ["lamp", "printer", "monitor", "chair", "kettle"]),
    )


def tickets(
    rng: random.Random,
    teams: dict[str, list[str]],
    urgent: list[str],
    low: list[str],
    count: int,
    dressed: bool,
) -> list[Row]:
    made = []
    for _ in range(count):
        team = pick(rng, list(teams))
        text = fill(rng, pick(rng, teams[team]))
        roll, priority = rng.random(), "normal"
        if roll < 0.25:
            text, priority = text + pick(rng, urgent), "urgent"
        elif roll < 0.45:
            text, priority = text + pick(rng, low), "low"
        if dressed:
            opener = pick(rng, ["", "", "Hello,", "Hi team,", "Good afternoon."])
            closer = pick(rng, ["", "", "Thanks!", f"Best, {pick(rng, NAMES)}"])
            text = " ".join(p for p in (opener, text, closer) if p)
        made.append({"input": text, "output": {"team": team, "priority": priority}})
    return made


MOODS = {
    "positive": [
        "Thanks a lot, the {thing} works perfectly now.",
        "Great service, {name} solved my problem in minutes.",
        "I love the new {thing}, it saves me so much time.",
        "Delivery was quick and everything arrived in perfect shape.",
        "Thank you for the fast refund, much appreciated.",
        "Really happy with the {thing}, well done to the whole team.",
        "{name} was so helpful on the phone, thank you!",
        "Brilliant, the {thing} finally does exactly what we need.",
        "Everything went smoothly this time, great job.",
        "I am impressed by how fast you fixed the {thing}.",
    ],
    "negative": [
        "This is the third time I write and nobody answers.",
        "The {thing} is broken again and I am fed up with it.",
        "Terrible service, {name} hung up on me.",
        "I am very disappointed, the parcel arrived late and damaged.",
        "You charged me twice and I am still waiting for my money. Unacceptable.",
        "Worst update ever, the {thing} is useless now.",
        "I have been waiting two weeks and I am really angry.",
        "The {thing} keeps failing and {name} just ignores my emails.",
        "Very poor quality, I want my money back.",
        "Nobody could explain why the {thing} stopped working. Frustrating.",
    ],
    "neutral": [
        "What are your opening hours on Saturday?",
        "Can I change the delivery address of my order?",
        "Please send me the invoice for {month}.",
        "Does the {thing} work on older phones?",
        "I would like to know the price of the business plan.",
        "My order number is #{ref}.",
        "How do I reset the {thing}?",
        "Is {name} still the contact for our account?",
        "I moved house, my new address is in the attachment.",
        "When will the {thing} be available again?",
    ],
}
MOODS_OOD = {
    "positive": [
        "wow, that was painless, cheers!",
        "5 stars. {name} went above and beyond.",
        "Just wanted to say the {thing} has made my week.",
    ],  # fmt: skip
    "negative": [
        "never again. waited 40 min on hold for nothing",
        "Your so-called support is a joke.",
        "{thing} died after two days, very annoyed",
    ],  # fmt: skip
    "neutral": [
        "is there a student discount",
        "Which payment methods do you accept?",
        "Forwarding the receipt for {month} as requested.",
    ],  # fmt: skip
}
THINGS = ["app", "dashboard", "new plan", "printer", "website", "sync"]


def messages(
    rng: random.Random, moods: dict[str, list[str]], count: int, dressed: bool
) -> list[Row]:
    made = []
    for _ in range(count):
        mood = pick(rng, list(moods))
        core = pick(rng, moods[mood])
        if dressed:
            preface = pick(rng, ["", "", "", "I ordered the {thing} in {month}.", "Order #{ref}.",
                                 "This is about the {thing}.", "Hello,"])  # fmt: skip
            closer = pick(rng, ["", "", "Regards, {full}", "Sent from my phone"])
            core = " ".join(p for p in (preface, core, closer) if p)
        name = pick(rng, NAMES)
        text = core.format(thing=pick(rng, THINGS), name=name.split()[0], full=name,
                           month=pick(rng, MONTHS), ref=rng.randint(10000, 99999))  # fmt: skip
        made.append({"input": text, "output": {"sentiment": mood}})
    return made


# ---------------------------------------------------------------- claim-decision

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


def severity_of(amount: int) -> str:
    return "minor" if amount < 1000 else "moderate" if amount < 5000 else "severe"


def decisions(rng: random.Random) -> list[Row]:
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
                f"Claim: {claim}\nFields: {json.dumps(fields)}. Severity: {severity_of(amount)}. "
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


# ---------------------------------------------------------------- writing the sets


def unique(rows: list[Row], seen: set[str] = frozenset()) -> list[Row]:  # type: ignore[assignment]
    """Rows whose input is new (first one wins), in order."""
    kept: dict[str, Row] = {}
    for row in rows:
        key = str(row["input"])
        if key not in seen and key not in kept:
            kept[key] = row
    return list(kept.values())


def write(name: str, rows: list[Row]) -> None:
    path = HERE / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{path.relative_to(HERE.parent.parent)}: {len(rows)} examples")


def sets(name: str, rows: list[Row], heldout: int, ood: list[Row]) -> None:
    rows = unique(rows)
    train, held = rows[heldout:], rows[:heldout]
    write(f"{name}.train", train)
    write(f"{name}.heldout", held)
    write(f"{name}.ood", unique(ood, {str(r["input"]) for r in rows})[:40])


def main() -> None:
    # One generator per specialist, so changing one set leaves the others as they are.
    def rng(name: str) -> random.Random:
        return random.Random(f"{SEED}-{name}")

    r = rng("ticket-triage")
    sets("ticket-triage", tickets(r, TEAMS, URGENT, LOW, 300, dressed=True), 60,
         tickets(r, TEAMS_OOD, URGENT_OOD, LOW_OOD, 80, dressed=False))  # fmt: skip
    r = rng("claims")
    claims_in = claim_rows(r, EVENTS, claim_a, 320)
    claims_out = claim_rows(r, EVENTS_OOD, claim_b, 60)
    sets("claim-extractor", [e for e, _ in claims_in], 60, [e for e, _ in claims_out])
    sets("claim-severity", [s for _, s in claims_in], 60, [s for _, s in claims_out])
    r = rng("sentiment")
    sets("sentiment", messages(r, MOODS, 300, True), 60, messages(r, MOODS_OOD, 80, False))
    r = rng("claim-decision")
    rows = unique(decisions(r))
    r.shuffle(rows)
    write("claim-decision.train", rows[48:])
    write("claim-decision.heldout", rows[:48])


if __name__ == "__main__":
    main()
