//! Which requests are cached, and under which key.

use serde_json::json;

use crate::config::CacheConfig;
use crate::domain::{ChatRequest, ResponseFormat, ToolChoice};

/// Why a request is not served from (or stored in) the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    /// Sampling is random: temperature above 0 without a seed (or with one, under
    /// `when: temperature_zero`).
    Random,
    /// A server-side tool may fetch live data.
    ServerTools,
}

/// Whether the answer to `req` is a pure function of the request.
pub fn cacheable(req: &ChatRequest, config: &CacheConfig) -> Result<(), Bypass> {
    let deterministic = req.sampling.is_greedy() || (config.seeded && req.sampling.seed.is_some());
    if !deterministic {
        return Err(Bypass::Random);
    }
    if req.tools.iter().any(|t| t.server) {
        return Err(Bypass::ServerTools);
    }
    Ok(())
}

/// Hex SHA-256 over everything that decides the answer: the tenant, the model, the rendered
/// and redacted messages, sampling, tools, output format, and the template and policies
/// versions (an edit of either is a new key). Canonical JSON: fixed field order, so equal
/// requests hash equally whatever order the client wrote.
pub fn cache_key(req: &ChatRequest) -> String {
    use sha2::Digest;
    let trail = req.trail.snapshot();
    let s = &req.sampling;
    let tools: Vec<_> = req
        .tools
        .iter()
        .map(|t| json!([t.name, t.description, canonical(&t.parameters), t.server]))
        .collect();
    let choice = match &req.tool_choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Named(n) => json!(["function", n]),
    };
    let format = match &req.response_format {
        ResponseFormat::Text => json!("text"),
        ResponseFormat::JsonObject => json!("json_object"),
        ResponseFormat::JsonSchema { name, schema } => json!([name, canonical(schema)]),
    };
    let messages: Vec<_> = req
        .messages
        .iter()
        .map(|m| json!([m.role.as_str(), m.content]))
        .collect();
    let doc = json!([
        "gatehouse-cache-v1",
        req.caller.tenant,
        req.model,
        messages,
        [
            s.temperature,
            s.top_p,
            s.top_k,
            s.max_tokens,
            s.stop,
            s.seed
        ],
        tools,
        choice,
        format,
        trail.template,
        req.guard.version(),
    ]);
    hex::encode(sha2::Sha256::digest(doc.to_string().as_bytes()))
}

/// `v` with object keys sorted at every level.
fn canonical(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), canonical(&m[k]));
            }
            serde_json::Value::Object(out)
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CacheStore;
    use crate::domain::{ChatMessage, Role, ToolDef};

    fn req(tenant: Option<&str>, content: &str) -> ChatRequest {
        let mut r = ChatRequest {
            model: "m".into(),
            messages: vec![ChatMessage {
                role: Role::User,
                content: content.into(),
            }],
            ..Default::default()
        };
        r.sampling.temperature = Some(0.0);
        r.caller.tenant = tenant.map(str::to_string);
        r
    }

    fn config(seeded: bool) -> CacheConfig {
        CacheConfig {
            store: CacheStore::Memory,
            ttl: std::time::Duration::from_secs(60),
            max_entries: 10,
            max_entry_bytes: 1000,
            seeded,
        }
    }

    #[test]
    fn the_key_separates_tenants_models_messages_and_sampling() {
        let base = cache_key(&req(Some("a"), "hi"));
        assert_eq!(base, cache_key(&req(Some("a"), "hi")));
        assert_ne!(base, cache_key(&req(Some("b"), "hi")));
        assert_ne!(base, cache_key(&req(None, "hi")));
        assert_ne!(base, cache_key(&req(Some("a"), "hi ")));
        let mut r = req(Some("a"), "hi");
        r.sampling.max_tokens = Some(5);
        assert_ne!(base, cache_key(&r));
        let mut r = req(Some("a"), "hi");
        r.model = "n".into();
        assert_ne!(base, cache_key(&r));
        let r = req(Some("a"), "hi");
        r.trail.update(|t| t.template = Some("t@2".into()));
        assert_ne!(base, cache_key(&r));
    }

    #[test]
    fn schema_key_order_does_not_matter() {
        let with = |schema: serde_json::Value| {
            let mut r = req(None, "x");
            r.response_format = ResponseFormat::JsonSchema {
                name: "s".into(),
                schema,
            };
            cache_key(&r)
        };
        assert_eq!(
            with(json!({"type": "object", "required": ["a"]})),
            with(json!({"required": ["a"], "type": "object"}))
        );
    }

    #[test]
    fn only_deterministic_requests_without_server_tools_are_cached() {
        let mut r = req(None, "x");
        assert_eq!(cacheable(&r, &config(true)), Ok(()));
        r.sampling.temperature = Some(0.7);
        assert_eq!(cacheable(&r, &config(true)), Err(Bypass::Random));
        r.sampling.seed = Some(7);
        assert_eq!(cacheable(&r, &config(true)), Ok(()));
        assert_eq!(cacheable(&r, &config(false)), Err(Bypass::Random));
        r.sampling.temperature = None;
        r.sampling.seed = None;
        assert_eq!(cacheable(&r, &config(true)), Err(Bypass::Random));
        let mut r = req(None, "x");
        r.tools.push(ToolDef {
            name: "http_get".into(),
            description: None,
            parameters: json!({}),
            server: true,
        });
        assert_eq!(cacheable(&r, &config(true)), Err(Bypass::ServerTools));
    }
}
