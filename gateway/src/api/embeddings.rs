//! `POST /v1/embeddings`: the OpenAI request, validated, and the response body.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;

/// Most inputs in one request (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

/// How vectors are written in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// JSON numbers.
    Float,
    /// Little-endian f32 bytes, base64 (what the official SDKs ask for by default).
    Base64,
}

/// A validated embeddings request.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsRequest {
    /// Model id.
    pub model: String,
    /// Texts, in order.
    pub input: Vec<String>,
    /// Response encoding.
    pub encoding: Encoding,
    /// `dimensions`, checked against the model once it is known.
    pub dimensions: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct Wire {
    model: String,
    input: Value,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<i64>,
    #[serde(default)]
    #[allow(dead_code)] // accepted for compatibility; identifies the end user upstream
    user: Option<String>,
}

fn invalid(param: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest {
        param,
        message: message.into(),
    }
}

/// Parses and validates a body.
pub fn parse(body: &[u8]) -> Result<EmbeddingsRequest, ApiError> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ApiError::InvalidUtf8(e.valid_up_to()));
    }
    let w: Wire = serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    if w.model.is_empty() {
        return Err(invalid("model", "`model` must not be empty"));
    }
    let input = match w.input {
        Value::String(s) => vec![s],
        Value::Array(items) => {
            if items.is_empty() {
                return Err(invalid("input", "`input` must not be an empty list"));
            }
            if items.len() > MAX_INPUTS {
                return Err(invalid(
                    "input",
                    format!("at most {MAX_INPUTS} inputs per request"),
                ));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s),
                    Value::Number(_) | Value::Array(_) => Err(invalid(
                        "input",
                        format!(
                            "input[{i}]: token arrays are not accepted; send text (tokens are \
                             the model's own, and clients cannot know them)"
                        ),
                    )),
                    _ => Err(invalid("input", format!("input[{i}] must be a string"))),
                })
                .collect::<Result<_, _>>()?
        }
        _ => {
            return Err(invalid(
                "input",
                "`input` must be a string or a list of strings",
            ))
        }
    };
    let encoding = match w.encoding_format.as_deref() {
        None | Some("float") => Encoding::Float,
        Some("base64") => Encoding::Base64,
        Some(other) => {
            return Err(invalid(
                "encoding_format",
                format!("`{other}` is not supported (float, base64)"),
            ))
        }
    };
    let dimensions = match w.dimensions {
        None => None,
        Some(d) if d >= 1 => Some(d as usize),
        Some(_) => return Err(invalid("dimensions", "must be at least 1")),
    };
    Ok(EmbeddingsRequest {
        model: w.model,
        input,
        encoding,
        dimensions,
    })
}

/// The response body.
pub fn response(model: &str, vectors: &[Vec<f32>], tokens: usize, encoding: Encoding) -> Value {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = match encoding {
                Encoding::Float => json!(v),
                Encoding::Base64 => {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(r: Result<EmbeddingsRequest, ApiError>) -> &'static str {
        r.unwrap_err().parts().2
    }

    #[test]
    fn strings_and_lists() {
        let r = parse(br#"{"model":"m","input":"hi"}"#).unwrap();
        assert_eq!(r.input, vec!["hi".to_string()]);
        assert_eq!(r.encoding, Encoding::Float);
        let r =
            parse(br#"{"model":"m","input":["a",""],"encoding_format":"base64","dimensions":384}"#)
                .unwrap();
        assert_eq!(r.input.len(), 2);
        assert_eq!((r.encoding, r.dimensions), (Encoding::Base64, Some(384)));
    }

    #[test]
    fn bad_requests_have_stable_codes() {
        assert_eq!(code(parse(b"{")), "invalid_json");
        assert_eq!(code(parse(b"\xff")), "invalid_utf8");
        for body in [
            r#"{"model":"","input":"x"}"#,
            r#"{"model":"m","input":[]}"#,
            r#"{"model":"m","input":[1,2]}"#,
            r#"{"model":"m","input":[[1]]}"#,
            r#"{"model":"m","input":{"a":1}}"#,
            r#"{"model":"m","input":"x","encoding_format":"hex"}"#,
            r#"{"model":"m","input":"x","dimensions":0}"#,
        ] {
            assert_eq!(code(parse(body.as_bytes())), "invalid_parameter", "{body}");
        }
        let many = serde_json::json!({"model": "m", "input": vec!["x"; MAX_INPUTS + 1]});
        assert_eq!(
            code(parse(many.to_string().as_bytes())),
            "invalid_parameter"
        );
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let v = response("m", &[vec![1.0, -2.5]], 3, Encoding::Base64);
        let b64 = v["data"][0]["embedding"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let back: Vec<f32> = bytes
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(back, vec![1.0, -2.5]);
        assert_eq!(v["usage"]["prompt_tokens"], 3);
        let v = response("m", &[vec![0.5]], 1, Encoding::Float);
        assert_eq!(v["data"][0]["embedding"], serde_json::json!([0.5]));
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&body);
        }

        #[test]
        fn arbitrary_inputs_never_panic(input in ".{0,30}", n in 0usize..5) {
            let body = serde_json::json!({"model": "m", "input": vec![input; n]});
            let _ = parse(body.to_string().as_bytes());
        }
    }
}
