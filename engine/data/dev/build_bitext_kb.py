#!/usr/bin/env python3
"""Writes the English Bitext knowledge base the server's demo site has, as a `nexus-flow eval`
KB: every example question of `engine/data/demo_kb.json` (`{"text", "intent"}`) and the
everyday out-of-scope questions every site gets (`engine/src/out_of_scope.txt`,
`{"text", "intent": null}`).

Usage: python3 engine/data/dev/build_bitext_kb.py OUT_DIR   (writes OUT_DIR/bitext_kb.jsonl)

Used with `multilingual_queries.jsonl` (see README.md beside this file). Standard library only.
"""

import json
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
engine = here.parent.parent
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
entries = json.load(open(engine / "data/demo_kb.json", encoding="utf-8"))
rows = [{"text": q, "intent": e["id"]} for e in entries for q in e["examples"]]
for line in open(engine / "src/out_of_scope.txt", encoding="utf-8"):
    if line.strip():
        rows.append({"text": line.strip(), "intent": None})
with open(out / "bitext_kb.jsonl", "w", encoding="utf-8") as f:
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
print(f"{len(rows)} rows -> {out / 'bitext_kb.jsonl'}")
