"""The reference side of bench/rag's embedding table: sentence-transformers on CPU, same model
files, same texts, same thread count, timed like the Rust side (one text per call, then the
whole list in batches of 32; the fastest of three trials each). Prints one JSON line per mode.

usage: python embed_reference.py MODEL_DIR TEXTS_JSON THREADS
"""
import json
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

model_dir, texts_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
texts = json.load(open(texts_path, encoding="utf-8"))
model = SentenceTransformer(model_dir, device="cpu")
model.max_seq_length = 256
tokens = sum(len(model.tokenizer(t, truncation=True, max_length=256)["input_ids"]) for t in texts)
model.encode(texts[:4])  # warm-up, as the Rust side has loaded its weights already

TRIALS = 3


def fastest(run):
    """Seconds of the fastest of TRIALS runs (the machine's noise only ever adds time), and
    the last run's result."""
    best = float("inf")
    for _ in range(TRIALS):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


with torch.inference_mode():
    single, _ = fastest(
        lambda: [model.encode([t], batch_size=1, normalize_embeddings=True) for t in texts]
    )
    batched, vectors = fastest(
        lambda: model.encode(texts, batch_size=32, normalize_embeddings=True)
    )

for mode, secs in (("one text per call", single), ("batches of 32", batched)):
    print(json.dumps({"mode": mode, "texts": len(texts), "tokens": tokens, "seconds": secs}))
print(json.dumps({"vectors": [[float(x) for x in v] for v in vectors[:3]]}))
