"""Scores a guardrail policy on the labelled sets scripts/fetch-guardrail-data writes, as a
user would: one `gatehouse policy explain --stage input --json` per case. A case counts as
flagged when a rule of one of `--kinds` (default: prompt_injection) decides on it, whatever
its action (block or warn): redacting an e-mail address is not catching an attack. Prints
recall per source and category over the attacks, and the false-positive rate per source over
the benign cases.

usage: python3 bench/guardrails/score.py [--policy FILE] [--bin PATH] [--data DIR]
"""
import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def flagged(binary: str, policy: str, kinds: set, text: str) -> bool:
    out = subprocess.run(
        [binary, "policy", "explain", "--policy", policy, "--stage", "input", "--json", "-"],
        input=text.encode("utf-8"),
        capture_output=True,
        check=False,
    )
    if out.returncode != 0:
        sys.exit(f"gatehouse policy explain failed: {out.stderr.decode(errors='replace')}")
    return any(d["kind"] in kinds for d in json.loads(out.stdout)["decisions"])


def table(title: str, rows: dict, rate: str) -> None:
    print(f"\n| {title} | cases | flagged | {rate} |\n|---|---:|---:|---:|")
    total = [0, 0]
    for key in sorted(rows):
        n, hit = rows[key]
        total[0] += n
        total[1] += hit
        print(f"| {key} | {n} | {hit} | {hit / n:.2f} |")
    print(f"| **all** | {total[0]} | {total[1]} | {total[1] / max(total[0], 1):.2f} |")


def main() -> None:
    target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/gatehouse-target"))
    parser = argparse.ArgumentParser()
    parser.add_argument("--policy", default=str(ROOT / "policies/default.yaml"))
    parser.add_argument("--bin", default=str(Path(target) / "debug/gatehouse"))
    parser.add_argument("--data", type=Path, default=ROOT / "data/guardrails")
    parser.add_argument("--kinds", default="prompt_injection", help="comma-separated rule kinds")
    args = parser.parse_args()
    kinds = set(args.kinds.split(","))
    print(f"## {Path(args.policy).name}")
    for name, rate in (("attacks.jsonl", "recall"), ("benign.jsonl", "false positives")):
        path = args.data / name
        if not path.is_file():
            sys.exit(f"no {path}: run scripts/fetch-guardrail-data")
        by_source = defaultdict(lambda: [0, 0])
        by_category = defaultdict(lambda: [0, 0])
        for line in filter(None, path.read_text(encoding="utf-8").split("\n")):
            case = json.loads(line)
            hit = flagged(args.bin, args.policy, kinds, case["text"])
            for rows, key in ((by_source, case["source"]), (by_category, case["category"])):
                rows[key][0] += 1
                rows[key][1] += hit
        table(f"{name} by source", by_source, rate)
        if name == "attacks.jsonl":
            table(f"{name} by category", by_category, rate)


if __name__ == "__main__":
    main()
