"""The RAG HTTP API with curl, against the default config (qdrant-edge in a temporary data dir)."""
import json
import subprocess


def _curl(gateway, method, path, body):
    out = subprocess.run(
        ["curl", "-sS", "-X", method, "-w", "\n%{http_code}", "-H", "content-type: application/json",
         "-d", json.dumps(body), gateway + path],
        check=True, capture_output=True, text=True,
    ).stdout
    text, status = out.rsplit("\n", 1)
    return int(status), json.loads(text)


def test_ingest_search_delete_with_curl(gateway):
    docs = [
        {"source": "garden.md", "text": "# Tomatoes\n\nWater tomato plants deeply twice a week in dry weather."},
        {"source": "cat.md", "text": "# Cats\n\nAn adult cat sleeps between twelve and sixteen hours a day."},
    ]
    status, report = _curl(gateway, "POST", "/v1/rag/e2e/documents", {"tenant": "t1", "documents": docs})
    assert status == 200, report
    assert report["files"] == 2 and report["written"] == report["chunks"]

    status, hits = _curl(gateway, "POST", "/v1/rag/e2e/search",
                         {"tenant": "t1", "query": "how long do cats sleep?", "top_k": 1})
    assert status == 200, hits
    assert hits["data"][0]["source"] == "cat.md"
    assert "sixteen hours" in hits["data"][0]["text"]

    # Tenant isolation over HTTP.
    status, other = _curl(gateway, "POST", "/v1/rag/e2e/search", {"tenant": "t2", "query": "cats"})
    assert status == 200 and other["data"] == []

    status, deleted = _curl(gateway, "DELETE", "/v1/rag/e2e/documents", {"tenant": "t1", "sources": ["cat.md"]})
    assert status == 200 and deleted["deleted"] >= 1
    status, err = _curl(gateway, "POST", "/v1/rag/missing/search", {"query": "x"})
    assert status == 404 and err["error"]["code"] == "collection_not_found"
