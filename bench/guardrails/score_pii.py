"""Scores PII detection on data/guardrails/pii.jsonl (scripts/fetch-guardrail-data: presidio-
evaluator's templates and ours, filled with FakeNameGenerator identities and generated,
checksum-valid numbers), as a user would: `gatehouse policy explain --stage input --jsonl`
with a policy that redacts every PII entity.

Per entity: recall (a true span counts as found when a decision of that entity overlaps it),
precision (decisions of that entity overlapping a true span of it), and the false-positive
rate (texts without that entity where it fired). Also how many texts of the benign prompt sets
(questions, writing requests, SOC questions) each entity fired on: not all false positives
(FreshQA asks about real people, writing requests paste real contact details), but a
ceiling on them.

usage: python3 bench/guardrails/score_pii.py [--policy FILE] [--bin PATH] [--data DIR]
"""
import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score import evaluate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
ENTITY = {"ipv4": "ip", "ipv6": "ip"}
ORDER = ["email", "phone", "credit_card", "iban", "us_ssn", "ip", "person", "address"]


def spans(result: dict, text: str) -> list:
    """(entity, start, end) of the PII decisions, as character offsets."""
    out = []
    for d in result["decisions"]:
        if d["kind"] != "pii":
            continue
        b = text.encode("utf-8")
        start = len(b[: d["start"]].decode("utf-8"))
        end = len(b[: d["end"]].decode("utf-8"))
        out.append((ENTITY.get(d["entity"], d["entity"]), start, end))
    return out


def main() -> None:
    target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/gatehouse-target"))
    parser = argparse.ArgumentParser()
    parser.add_argument("--policy", default=str(ROOT / "bench/guardrails/pii-all.yaml"))
    parser.add_argument("--bin", default=str(Path(target) / "debug/gatehouse"))
    parser.add_argument("--data", type=Path, default=ROOT / "data/guardrails")
    args = parser.parse_args()
    path = args.data / "pii.jsonl"
    if not path.is_file():
        sys.exit(f"no {path}: run scripts/fetch-guardrail-data")
    cases = [json.loads(l) for l in path.read_text(encoding="utf-8").split("\n") if l.strip()]
    results = evaluate(args.bin, args.policy, cases)
    truth_n = defaultdict(int)
    found = defaultdict(int)
    detected = defaultdict(int)
    correct = defaultdict(int)
    without = defaultdict(int)
    fired_without = defaultdict(int)
    for case, result in zip(cases, results):
        got = spans(result, case["text"])
        truth = [(e["type"], e["start"], e["end"]) for e in case["entities"]]
        for t, s, e in truth:
            truth_n[t] += 1
            found[t] += any(g == t and gs < e and s < ge for g, gs, ge in got)
        for g, gs, ge in got:
            detected[g] += 1
            correct[g] += any(g == t and gs < e and s < ge for t, s, e in truth)
        types = {t for t, _, _ in truth}
        for t in ORDER:
            if t not in types:
                without[t] += 1
                fired_without[t] += any(g == t for g, _, _ in got)
    # The benign prompts, less the PII templates the injection sets borrow (they hold PII).
    benign = [json.loads(l) for l in (args.data / "benign.jsonl").read_text(encoding="utf-8").split("\n") if l.strip()]
    benign = [c for c in benign if c["category"] != "request_with_pii"]
    benign_results = evaluate(args.bin, args.policy, benign)
    benign_fired = defaultdict(int)
    for case, result in zip(benign, benign_results):
        for t in {g for g, _, _ in spans(result, case["text"])}:
            benign_fired[t] += 1
    print(f"## {Path(args.policy).name} on {len(cases)} templated texts, {len(benign)} benign prompts\n")
    print("| entity | spans | found | recall | detections | precision | FPR (texts without it) | benign prompts flagged |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for t in ORDER:
        n, f, d, c = truth_n[t], found[t], detected[t], correct[t]
        print(f"| {t} | {n} | {f} | {f / max(n, 1):.3f} | {d} | {c / d if d else 1:.3f} | "
              f"{fired_without[t] / max(without[t], 1):.3f} | {benign_fired[t]} ({benign_fired[t] / len(benign):.3f}) |")


if __name__ == "__main__":
    main()
