"""Simulated traffic of a customer-support assistant: varied prompts by topic, from templates we wrote.

Used by the demo, the tests and the benchmarks. It is our own text, not a public data set; the drift
calibration on public data is described in docs/drift.md.
"""

from __future__ import annotations

import random

TOPICS: dict[str, tuple[list[str], list[str]]] = {
    "account": (
        ["How do I {verb} my {thing}?", "I can't {verb} my {thing}, what should I do?",
         "Is there a way to {verb} the {thing} on my account?", "Why won't the app let me {verb} my {thing}?",
         "Help! I need to {verb} my {thing} today.", "What are the steps to {verb} my {thing}?"],
        ["reset|password", "change|email address", "update|phone number", "recover|username",
         "enable|two-factor login", "delete|profile", "verify|identity", "unlock|account"],
    ),
    "billing": (
        ["Why was I charged {amount} for my {thing}?", "Can I get a refund for the {thing}?",
         "My {thing} payment of {amount} failed twice.", "How do I switch my {thing} to annual billing?",
         "There is a {amount} charge on my card for the {thing} I don't recognise.",
         "When will the {thing} invoice be sent?"],
        ["subscription", "pro plan", "family plan", "storage upgrade", "premium add-on", "team license"],
    ),
    "shipping": (
        ["Where is my order #{num}?", "My package #{num} says delivered but I never got it.",
         "Can I change the delivery address for order #{num}?", "How long does shipping to {place} take?",
         "The box for order #{num} arrived damaged.", "Do you ship to {place}?"],
        ["Canada", "Brazil", "Japan", "Kenya", "Norway", "Australia", "India", "Mexico"],
    ),
    "cooking": (
        ["What can I cook with {a} and {b}?", "How long should I bake {a} at 180 degrees?",
         "Give me a vegetarian recipe using {a}.", "Can I substitute {a} for {b} in a cake?",
         "What wine goes with {a} and {b}?", "How do I keep {a} fresh for a week?"],
        ["chickpeas", "salmon", "spinach", "sweet potatoes", "tofu", "mushrooms", "lentils", "eggplant"],
    ),
    "travel": (
        ["What should I pack for a week in {place}?", "Is {place} safe to visit in winter?",
         "Plan a three day itinerary for {place}.", "What are cheap ways to get around {place}?",
         "Which museums in {place} are worth it?", "Do I need a visa to visit {place}?"],
        ["Lisbon", "Kyoto", "Marrakesh", "Reykjavik", "Buenos Aires", "Hanoi", "Prague", "Cape Town"],
    ),
}


def prompts(topic: str, n: int, seed: int = 0) -> list[str]:
    templates, fillers = TOPICS[topic]
    rng = random.Random(f"{topic}-{seed}")
    out = []
    for _ in range(n):
        t = rng.choice(templates)
        f = rng.choice(fillers)
        verb, _, thing = f.partition("|")
        a, b = rng.sample(fillers, 2)
        out.append(t.format(verb=verb, thing=thing or f, amount=f"${rng.randint(5, 300)}.{rng.randint(0, 99):02d}",
                            num=rng.randint(10000, 99999), place=f, a=a, b=b))
    return out


def mixed(topics: dict[str, float], n: int, seed: int = 0) -> list[str]:
    """Exactly `n` prompts drawn from topics with the given weights (largest remainder), shuffled."""
    total = sum(topics.values())
    exact = {t: w / total * n for t, w in topics.items()}
    counts = {t: int(x) for t, x in exact.items()}
    for t in sorted(exact, key=lambda t: exact[t] - counts[t], reverse=True)[: n - sum(counts.values())]:
        counts[t] += 1
    out = [p for t, c in counts.items() for p in prompts(t, c, seed)]
    random.Random(seed).shuffle(out)
    return out
