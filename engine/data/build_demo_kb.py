#!/usr/bin/env python3
"""Builds server/data/demo_kb.json, the demo site's knowledge base, from the Bitext
customer-support dataset (CDLA-Sharing-1.0; see ATTRIBUTION.md beside this script).

Usage: python3 server/data/build_demo_kb.py path/to/bitext_customer_support/train.csv [out.json]

One entry per intent:
  id        the intent name (e.g. "cancel_order")
  title     a short human title (TITLES below)
  answer    one real response of the intent: the most typical one that fits any visitor
            (see pick_answer), its {{placeholders}} kept for the site to fill, line
            endings made "\n"
  examples  every instruction of the intent, runs of white space made one space,
            deduplicated case-insensitively, in file order
  escalate  for the intents that must reach a person (ESCALATE below), the serde form of
            nexus_shared::HandoffReason

Standard library only; the output is byte-for-byte reproducible.
"""

import csv
import json
import re
import sys
from pathlib import Path

TITLES = {
    "cancel_order": "Cancel an order",
    "change_order": "Change an order",
    "change_shipping_address": "Change the shipping address",
    "check_cancellation_fee": "Cancellation fees",
    "check_invoice": "Check an invoice",
    "check_payment_methods": "Payment methods",
    "check_refund_policy": "Refund policy",
    "complaint": "Make a complaint",
    "contact_customer_service": "Contact customer service",
    "contact_human_agent": "Talk to a person",
    "create_account": "Create an account",
    "delete_account": "Delete your account",
    "delivery_options": "Delivery options",
    "delivery_period": "Delivery times",
    "edit_account": "Edit your account",
    "get_invoice": "Get an invoice",
    "get_refund": "Get a refund",
    "newsletter_subscription": "Newsletter subscription",
    "payment_issue": "Payment problems",
    "place_order": "Place an order",
    "recover_password": "Recover your password",
    "registration_problems": "Registration problems",
    "review": "Leave a review",
    "set_up_shipping_address": "Set up a shipping address",
    "switch_account": "Switch accounts",
    "track_order": "Track an order",
    "track_refund": "Track a refund",
}

ESCALATE = {
    "contact_human_agent": {"reason": "visitor_asked"},
    "contact_customer_service": {"reason": "visitor_asked"},
    "complaint": {"reason": "sensitive", "category": "complaint"},
}

PLACEHOLDER = re.compile(r"\{\{([^{}]*)\}\}")
# Placeholders that stand for one customer's own order, invoice, name, … (the answer would only
# fit the question it was written for), and leaked raw values such as {{732201349959}}.
SPECIFIC = re.compile(
    r"anonymi[sz]ed|order number|order id|purchase (number|id)|tracking number"
    r"|invoice number|bill number|^[0-9a-f]{6,}$|^\d",
    re.IGNORECASE,
)
# Text that only fits the question it was written for: a number, amount, month or e-mail
# address copied from it, or a placeholder in square brackets that the site's values would not
# fill.
SPECIFIC_TEXT = re.compile(
    r"\d{3,}|#\d|[$€£]\s?\d|\S+@\S+\.\w+|\[[A-Z][^\]]*\]"
    r"|\b(January|February|March|April|May|June|July|August|September|October|November"
    r"|December)\b|\bago\b"
)
WORD = re.compile(r"[a-z]+")


def specific_placeholders(response):
    """How many placeholders of the response stand for one customer's order, invoice, …"""
    return sum(1 for name in PLACEHOLDER.findall(response) if SPECIFIC.search(name.strip()))


def copies_question(row):
    """True when the response repeats a number, amount, … of the question it answers."""
    response = row["response"]
    value = row["entity_value"].strip().lower()
    return bool(SPECIFIC_TEXT.search(response)) or bool(value and value in response.lower())


def bag(text):
    counts = {}
    for word in WORD.findall(PLACEHOLDER.sub(" ", text.lower())):
        counts[word] = counts.get(word, 0) + 1
    return counts


def cosine(a, b):
    dot = sum(n * b.get(w, 0) for w, n in a.items())
    norm = (sum(n * n for n in a.values()) * sum(n * n for n in b.values())) ** 0.5
    return dot / norm if norm else 0.0


def pick_answer(rows):
    """The most typical response of the intent that fits any visitor.

    Responses that copy a number, amount, … from their question are left out (unless all do).
    Among the rest, in this order of preference: no placeholder for one customer's order,
    invoice, … ({{Order Number Anonymized}}, which the site can only fill with a generic
    phrase); written for a question without an entity (an order id, a person's name, …); fewer
    such placeholders; words closest (cosine) to the words of all the intent's responses;
    earliest in the file.
    """
    candidates = [r for r in rows if not copies_question(r)] or rows
    centroid = {}
    for row in rows:
        for word, n in bag(row["response"]).items():
            centroid[word] = centroid.get(word, 0) + n

    def preference(indexed):
        index, row = indexed
        specific = specific_placeholders(row["response"])
        typical = round(cosine(bag(row["response"]), centroid), 9)
        return (specific > 0, bool(row["entity_type"]), specific, -typical, index)

    best = min(enumerate(candidates), key=preference)[1]["response"]
    return best.replace("\r\n", "\n").replace("\r", "\n").strip()


def dedup(texts):
    seen = set()
    out = []
    for text in texts:
        text = " ".join(text.split())
        key = text.lower()
        if text and key not in seen:
            seen.add(key)
            out.append(text)
    return out


def build(rows):
    by_intent = {}
    for row in rows:
        by_intent.setdefault(row["intent"], []).append(row)
    unknown = sorted(set(by_intent) - set(TITLES))
    if unknown:
        sys.exit(f"intents without a title: {', '.join(unknown)}")
    entries = []
    for intent in sorted(by_intent):
        intent_rows = by_intent[intent]
        entry = {
            "id": intent,
            "title": TITLES[intent],
            "answer": pick_answer(intent_rows),
            "examples": dedup(r["instruction"] for r in intent_rows),
        }
        if intent in ESCALATE:
            entry["escalate"] = ESCALATE[intent]
        entries.append(entry)
    return entries


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.strip().splitlines()[3])
    source = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) == 3 else Path(__file__).with_name("demo_kb.json")
    with source.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    entries = build(rows)
    with out.open("w", encoding="utf-8", newline="\n") as f:
        json.dump(entries, f, ensure_ascii=False, indent=1)
        f.write("\n")
    examples = sum(len(e["examples"]) for e in entries)
    print(f"{out}: {len(entries)} entries, {examples} examples from {len(rows)} rows")


if __name__ == "__main__":
    main()
