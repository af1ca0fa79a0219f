#!/usr/bin/env python3
"""Builds the answer engine's development sets from the data sets the project holds
(CLINC150, Banking77, Bitext; see their SOURCE.txt files), for `nexus-flow eval`.

Usage: python3 engine/data/dev/build_dev_sets.py DATA_DIR OUT_DIR
  DATA_DIR  the folder with clinc150/, banking77/, bitext_customer_support/
  OUT_DIR   where the sets are written (not committed: they are derived, and large)

Every split is our own, drawn with a fixed seed, so nothing here is a published test set:
  clinc_kb.jsonl / clinc_dev.jsonl   CLINC150 train, 80 % / 20 % of each intent and of the
                                     out-of-scope examples (tune on these)
  clinc_faq_kb.jsonl                 one example question per CLINC150 intent (from clinc_kb)
  banking_kb.jsonl / banking_dev.jsonl  Banking77 train, 80 % / 20 % of each intent (with
                                     `--leave-out 15` for unknown topics)
  bitext_docs.jsonl                  Bitext answers as articles: one per intent, its demo
                                     knowledge base title and answer, no example questions
  bitext_queries.jsonl               20 Bitext questions per intent ({text, doc}), and the
                                     out-of-scope questions of clinc_dev ({text, doc: null})
  bitext_faq_kb.jsonl                one Bitext question per intent (a plain FAQ)

Standard library only; the output is reproducible.
"""

import csv
import json
import random
import sys
from collections import defaultdict
from pathlib import Path


def read_jsonl(p):
    return [json.loads(l) for l in open(p, encoding="utf-8") if l.strip()]


def write_jsonl(p, rows):
    with open(p, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def split(rows, share, rng):
    by = defaultdict(list)
    for r in rows:
        by[r["intent"]].append(r)
    kb, dev = [], []
    for intent in sorted(by, key=lambda x: (x is None, x or "")):
        items = by[intent][:]
        rng.shuffle(items)
        n = round(len(items) * share)
        kb += items[:n]
        dev += items[n:]
    return kb, dev


def main():
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(17)

    clinc_kb, clinc_dev = split(read_jsonl(data / "clinc150/train.jsonl"), 0.8, rng)
    write_jsonl(out / "clinc_kb.jsonl", clinc_kb)
    write_jsonl(out / "clinc_dev.jsonl", clinc_dev)
    seen, faq = set(), []
    for r in clinc_kb:
        if r["intent"] is not None and r["intent"] not in seen:
            seen.add(r["intent"])
            faq.append(r)
    write_jsonl(out / "clinc_faq_kb.jsonl", faq)

    bank_kb, bank_dev = split(read_jsonl(data / "banking77/train.jsonl"), 0.8, rng)
    write_jsonl(out / "banking_kb.jsonl", bank_kb)
    write_jsonl(out / "banking_dev.jsonl", bank_dev)

    demo = json.load(open(Path(__file__).resolve().parent.parent / "demo_kb.json"))
    entries = demo["entries"] if isinstance(demo, dict) else demo
    write_jsonl(
        out / "bitext_docs.jsonl",
        [{"id": e["id"], "title": e["title"], "body": e["answer"]} for e in entries],
    )
    by = defaultdict(list)
    with open(data / "bitext_customer_support/train.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            by[row["intent"]].append(" ".join(row["instruction"].split()))
    queries, faq = [], []
    for intent in sorted(by):
        qs = sorted(set(by[intent]))
        rng.shuffle(qs)
        faq.append({"text": qs[0], "intent": intent})
        queries += [{"text": q, "doc": intent} for q in qs[1:21]]
    queries += [{"text": r["text"], "doc": None} for r in clinc_dev if r["intent"] is None]
    write_jsonl(out / "bitext_queries.jsonl", queries)
    write_jsonl(out / "bitext_faq_kb.jsonl", faq)


if __name__ == "__main__":
    main()
