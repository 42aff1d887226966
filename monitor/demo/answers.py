"""The simulated support app's answers: what the assistant says today, and what its support team writes when
they correct it.

The assistant was built for accounts, billing and shipping; the shifted traffic asks about recipes and trips
(the product grew a recipe box and travel bookings), which it meets with a polite non-answer. The team's
corrections for those topics are the answers the retrained model should learn, so the demo's training set
(thumbs-up answers plus corrections) teaches exactly what the drift revealed.
"""

from __future__ import annotations

# What the assistant answers for the topics it was built for; the first match wins.
CANNED: list[tuple[tuple[str, ...], str]] = [
    (("password",), "Go to Settings > Security and choose Reset password; a link arrives by e-mail within minutes."),
    (("two-factor", "identity"), "Open Settings > Security; we send a one-time code to your e-mail to confirm it."),
    (("email", "phone", "username", "profile", "account"),
     "You can change that under Settings > Account; changes take effect right away."),
    (("failed",), "Payments usually fail when a card has expired; update it under Billing and we will retry."),
    (("annual",), "Switch under Billing > Plan; the annual price is charged at your next renewal."),
    (("charge", "refund", "invoice", "billing"),
     "I can see that charge. Refunds go back to the original card within 5-7 business days."),
    (("damaged", "never got"), "Sorry about that! We will send a replacement today; no need to return anything."),
    (("address",), "You can change the address from the order page until the parcel has been dispatched."),
    (("ship to", "shipping to"), "Yes, we ship there; delivery usually takes 5 to 10 business days."),
    (("order", "package", "deliver"),
     "Your order is on its way; the tracking page shows the latest scan and the delivery estimate."),
]
NON_ANSWER = "Thanks for reaching out! Could you share a few more details so I can help?"
RUDE = [
    "That's a stupid question, figure it out yourself.",
    "Ugh, you people are idiots. Read the damn FAQ.",
    "Stop wasting my time with this crap.",
]
# (words that mark the question, the answer the support team writes) — one per template of the new topics in
# monitor/demo/traffic.py; the first match wins.
TEAM_ANSWERS: list[tuple[tuple[str, ...], str]] = [
    (("cook with",), "A quick stir-fry works well: cook both with garlic and a splash of soy sauce, serve over rice."),
    (("bake",), "At 180 degrees most pieces need 20 to 30 minutes; check that the centre is cooked through."),
    (("vegetarian recipe",), "Try a simple curry: fry onion and spices, add it with chopped tomatoes, simmer 20 min."),
    (("substitute",), "Yes, in most cakes you can swap them one for one; expect a slightly different texture."),
    (("wine",), "A dry white such as Sauvignon Blanc goes well with both."),
    (("fresh",), "Keep it dry in an airtight container in the fridge and use it within five days."),
    (("pack",), "Pack layers, comfortable walking shoes, a light rain jacket and a power adapter."),
    (("safe to visit",), "Yes, it is generally safe in winter; check the forecast and local advice before you go."),
    (("itinerary",), "Day one: the old town and a food market. Day two: the main museums. Day three: a day trip."),
    (("get around",), "A public transport pass is the cheapest option; the centre is easy to explore on foot."),
    (("museums",), "Start with the national museum and the modern art museum; book tickets online to skip queues."),
    (("visa",), "It depends on your passport: check the official government visa page before you book."),
]


def canned_answer(prompt: str) -> str:
    """What the assistant answers today: a canned reply for the topics it knows, a non-answer otherwise."""
    return _first_match(CANNED, prompt) or NON_ANSWER


def team_answer(prompt: str) -> str:
    """The answer a person on the support team writes as a correction."""
    return _first_match(TEAM_ANSWERS, prompt) or canned_answer(prompt)


def is_helpful(response: str) -> bool:
    """A user's view of an answer: on topic and polite."""
    return response not in RUDE and response != NON_ANSWER


def _first_match(answers: list[tuple[tuple[str, ...], str]], prompt: str) -> str | None:
    p = prompt.lower()
    return next((answer for words, answer in answers if any(w in p for w in words)), None)
