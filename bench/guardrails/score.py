"""Scores guardrail policies on the labelled sets scripts/fetch-guardrail-data writes, as a
user would: `gatehouse policy explain --stage input --jsonl` (one process per policy, one JSON
line per case). A case counts as flagged when a rule of one of `--kinds` (default:
prompt_injection) decides on it, whatever its action (block or warn): redacting an e-mail
address is not catching an attack.

Prints, per policy, recall per source and category over the attacks and the false-positive
rate per source over the benign cases, on the sources the built-in semantic weights were
never trained on (`--all` adds the training sources, marked `train`). Also the time per case
(p50, p95) the evaluation took inside gatehouse.

usage: python3 bench/guardrails/score.py [--policy FILE]... [--bin PATH] [--data DIR] [--all]
"""
import argparse
import fnmatch
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
WEIGHTS = ROOT / "gateway/src/policy/detect/semantic/injection-minilm.json"


def evaluate(binary: str, policy: str, cases: list) -> list:
    """gatehouse's JSON result for each case, in order."""
    proc = subprocess.run(
        [binary, "policy", "explain", "--policy", policy, "--stage", "input", "--jsonl"],
        input="".join(json.dumps({"text": c["text"]}) + "\n" for c in cases).encode("utf-8"),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"gatehouse policy explain failed: {proc.stderr.decode(errors='replace')}")
    results = [json.loads(l) for l in proc.stdout.decode("utf-8").split("\n") if l.strip()]
    if len(results) != len(cases):
        sys.exit(f"gatehouse answered {len(results)} lines for {len(cases)} cases")
    return results


def table(title: str, rows: dict, rate: str) -> None:
    print(f"\n| {title} | split | cases | flagged | {rate} |\n|---|---|---:|---:|---:|")
    for (key, split) in sorted(rows, key=lambda k: (k[1], k[0])):
        n, hit = rows[(key, split)]
        print(f"| {key} | {split} | {n} | {hit} | {hit / n:.3f} |")
    for split in ("held out", "train"):
        n = sum(v[0] for k, v in rows.items() if k[1] == split)
        hit = sum(v[1] for k, v in rows.items() if k[1] == split)
        if n:
            print(f"| **all {split}** | | {n} | {hit} | {hit / n:.3f} |")


def percentile(values: list, p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))] if s else 0.0


def main() -> None:
    target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/gatehouse-target"))
    parser = argparse.ArgumentParser()
    parser.add_argument("--policy", action="append", help="repeatable; default policies/default.yaml and policies/soc.yaml")
    parser.add_argument("--bin", default=str(Path(target) / "debug/gatehouse"))
    parser.add_argument("--data", type=Path, default=ROOT / "data/guardrails")
    parser.add_argument("--kinds", default="prompt_injection", help="comma-separated rule kinds")
    parser.add_argument("--all", action="store_true",
                        help="score the training sources too (slow: the classifier reads every window)")
    args = parser.parse_args()
    kinds = set(args.kinds.split(","))
    policies = args.policy or [str(ROOT / "policies/default.yaml"), str(ROOT / "policies/soc.yaml")]
    trained_on = json.loads(WEIGHTS.read_text())["trained"].get("train_sources", [])

    def split(source: str) -> str:
        return "train" if any(fnmatch.fnmatchcase(source, g) for g in trained_on) else "held out"

    sets = {}
    for name in ("attacks.jsonl", "benign.jsonl"):
        path = args.data / name
        if not path.is_file():
            sys.exit(f"no {path}: run scripts/fetch-guardrail-data")
        cases = [json.loads(l) for l in path.read_text(encoding="utf-8").split("\n") if l.strip()]
        sets[name] = [c for c in cases if args.all or split(c["source"]) == "held out"]
    print(f"semantic weights trained on: {', '.join(trained_on) or 'nothing recorded'}")
    for policy in policies:
        print(f"\n## {Path(policy).name}")
        micros = []
        for name, rate in (("attacks.jsonl", "recall"), ("benign.jsonl", "false positives")):
            cases = sets[name]
            results = evaluate(args.bin, policy, cases)
            by_source = defaultdict(lambda: [0, 0])
            by_category = defaultdict(lambda: [0, 0])
            for case, result in zip(cases, results):
                hit = any(d["kind"] in kinds for d in result["decisions"])
                micros.append(result["micros"])
                s = split(case["source"])
                for rows, key in ((by_source, (case["source"], s)), (by_category, (case["category"], s))):
                    rows[key][0] += 1
                    rows[key][1] += hit
            table(f"{name} by source", by_source, rate)
            if name == "attacks.jsonl":
                table(f"{name} by category", by_category, rate)
        print(f"\ntime per case inside gatehouse: p50 {percentile(micros, 0.5) / 1000:.2f} ms, "
              f"p95 {percentile(micros, 0.95) / 1000:.2f} ms over {len(micros)} cases")


if __name__ == "__main__":
    main()
