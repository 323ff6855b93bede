#!/usr/bin/env python3
"""Generate reference sentence embeddings for all-MiniLM-L6-v2 (test fixture).

Writes engine/tests/fixtures/minilm-reference.json, which the Rust
reimplementation of the embedder is checked against.

The fixture values come from the official `sentence-transformers` package
(CPU, float32):

    SentenceTransformer(model_dir, device="cpu").encode(sentences,
                                                        normalize_embeddings=True)

As a sanity check the script also recomputes every embedding with an
independent pure-numpy BERT forward pass (float64) and prints the maximum
absolute difference between the two; that number is only printed, the
fixture holds the sentence-transformers values.

Setup (once; ~2 minutes, a few GB of disk because PyPI's torch pulls the
CUDA wheels -- the CPU-only index https://download.pytorch.org/whl/cpu is
preferable where reachable):

    python3 -m venv /tmp/st-venv
    /tmp/st-venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu \
        || /tmp/st-venv/bin/pip install torch
    /tmp/st-venv/bin/pip install sentence-transformers

Run (from the repository root; both arguments are optional):

    HF_HUB_OFFLINE=1 /tmp/st-venv/bin/python scripts/minilm-reference.py \
        [MODEL_DIR (default models/all-minilm-l6-v2)] \
        [OUTPUT (default engine/tests/fixtures/minilm-reference.json)]

Fixture format:
    {"model", "method", "max_seq_length": 256, "normalized": true,
     "sentences": [...10 strings...],
     "embeddings": [[384 floats, 7 significant digits], ...],
     "token_counts": [tokens incl. [CLS]/[SEP] after truncation to 256, ...]}
"""

import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_MODEL_DIR = os.path.join(REPO, "models", "all-minilm-l6-v2")
DEFAULT_OUTPUT = os.path.join(REPO, "engine", "tests", "fixtures", "minilm-reference.json")

MAX_SEQ_LENGTH = 256

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Gatehouse is an LLM gateway with guardrails, retrieval and speculative decoding.",
    "Failed password for invalid user admin from 203.0.113.45 port 52814 ssh2",
    "How do I rotate the API keys of a tenant?",
    "",
    "Ünïcödé, emojis 🚀 and CJK 漢字 are handled.",
    "Retrieval-augmented generation grounds answers in documents. " * 60,
    "a",
    "Qdrant stores vectors with payloads and filters them by tenant.",
    "The capital of France is Paris.",
]


def round_sig(x, digits=7):
    """Round to `digits` significant digits; returns a Python float."""
    return float(f"{float(x):.{digits}g}")


# --------------------------------------------------------------------------
# Independent pure-numpy BERT (sanity check only)
# --------------------------------------------------------------------------

try:
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover
    _erf = np.vectorize(math.erf)


def _layer_norm(x, w, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def numpy_embed(model_dir, sentences):
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    n_layers = cfg["num_hidden_layers"]
    n_heads = cfg["num_attention_heads"]
    hidden = cfg["hidden_size"]
    eps = cfg["layer_norm_eps"]
    head_dim = hidden // n_heads

    w = {k: v.astype(np.float64) for k, v in
         load_file(os.path.join(model_dir, "model.safetensors")).items()}
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_SEQ_LENGTH)

    out, ids_all = [], []
    for s in sentences:
        ids = tok.encode(s).ids
        ids_all.append(ids)
        n = len(ids)
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        for i in range(n_layers):
            p = f"encoder.layer.{i}."

            def lin(name, h):
                return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            q = lin("attention.self.query", x).reshape(n, n_heads, head_dim).transpose(1, 0, 2)
            k = lin("attention.self.key", x).reshape(n, n_heads, head_dim).transpose(1, 0, 2)
            v = lin("attention.self.value", x).reshape(n, n_heads, head_dim).transpose(1, 0, 2)
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(head_dim)
            scores -= scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            ctx = (probs @ v).transpose(1, 0, 2).reshape(n, hidden)
            x = _layer_norm(lin("attention.output.dense", ctx) + x,
                            w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"], eps)
            h = _gelu(lin("intermediate.dense", x))
            x = _layer_norm(lin("output.dense", h) + x,
                            w[p + "output.LayerNorm.weight"],
                            w[p + "output.LayerNorm.bias"], eps)
        pooled = x.mean(0)  # no padding: attention mask is all ones
        out.append(pooled / np.linalg.norm(pooled))
    return np.stack(out), ids_all


# --------------------------------------------------------------------------


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL_DIR
    output = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_OUTPUT

    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir, device="cpu")
    assert model.max_seq_length == MAX_SEQ_LENGTH, model.max_seq_length
    emb = model.encode(SENTENCES, normalize_embeddings=True)
    emb = np.asarray(emb, dtype=np.float32)
    assert emb.shape == (len(SENTENCES), 384), emb.shape

    # Token counts exactly as sentence-transformers sees them (after truncation).
    features = model.tokenize(SENTENCES)
    token_counts = [int(c) for c in features["attention_mask"].sum(dim=1).tolist()]

    # Independent numpy reference.
    ref, np_ids = numpy_embed(model_dir, SENTENCES)
    np_counts = [len(i) for i in np_ids]
    st_ids = [features["input_ids"][i][: token_counts[i]].tolist() for i in range(len(SENTENCES))]
    assert np_counts == token_counts, (np_counts, token_counts)
    assert st_ids == np_ids, "token ids differ between sentence-transformers and tokenizer.json"
    diff = np.abs(emb.astype(np.float64) - ref)
    print(f"max |sentence-transformers - numpy| = {diff.max():.3e}")
    for i, s in enumerate(SENTENCES):
        print(f"  [{i}] tokens={token_counts[i]:3d} maxdiff={diff[i].max():.2e} "
              f"norm={np.linalg.norm(emb[i]):.7f} {s[:50]!r}")

    method = (f"sentence-transformers {sentence_transformers.__version__} "
              f"with torch {torch.__version__.split('+')[0]} (CPU)")
    fixture = {
        "model": "all-MiniLM-L6-v2",
        "method": method,
        "max_seq_length": MAX_SEQ_LENGTH,
        "normalized": True,
        "sentences": SENTENCES,
        "embeddings": [[round_sig(x) for x in row] for row in emb.tolist()],
        "token_counts": token_counts,
    }
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False)
        f.write("\n")
    print(f"method: {method}")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
