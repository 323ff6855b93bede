//! Tool calling: the text forms the model reads and writes ([`prompt`]), and the tools that
//! run inside the gateway (configured under `tools:`): `calculator` and `http_get`. A
//! `retrieve` tool arrives with the RAG layer; until then none is registered.

pub mod calculator;
pub mod http_get;
pub mod prompt;

use std::time::Duration;

use serde_json::{json, Value};

use crate::config::ToolsConfig;
use crate::domain::ToolDef;

/// Errors of the tools area, as a request meets them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToolError {
    /// A tool without `parameters` that no server-side tool answers to.
    #[error("tool `{name}` has no `parameters` and is not a server-side tool (configured: {configured})")]
    UnknownServerTool {
        /// The name sent.
        name: String,
        /// Server-side tools this gateway runs.
        configured: String,
    },
    /// The request combines tool settings that cannot be served together.
    #[error("{0}")]
    Unsupported(String),
    /// The model's call does not match the tool's schema, or is not a call at all.
    #[error("the model's tool call is invalid: {0}")]
    InvalidCall(String),
}

/// Why a server-side tool run failed; the model is told the message.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The arguments lack a required field.
    #[error("`{0}` is required")]
    MissingArgument(&'static str),
    /// The calculator cannot evaluate the expression.
    #[error(transparent)]
    Calculator(#[from] calculator::CalcError),
    /// `http_get` refused the URL before sending anything.
    #[error(transparent)]
    Url(#[from] http_get::UrlError),
    /// The GET failed (connection, timeout, or the body stream broke).
    #[error("{0}")]
    Fetch(#[from] http_get::FetchError),
}

/// Why the configured server-side tools cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// An `http_get.allow` prefix is not a plain directory URL.
    #[error("{0}")]
    Prefix(String),
    /// The HTTP client cannot be built (TLS roots, for example).
    #[error("the HTTP client cannot be built: {0}")]
    Client(#[source] reqwest::Error),
}

/// One server-side tool.
pub enum ServerTool {
    /// Arithmetic on an expression (`calculator`).
    Calculator,
    /// GET on allowlisted URL prefixes.
    HttpGet(http_get::HttpGet),
}

impl ServerTool {
    /// Its name.
    pub fn name(&self) -> &'static str {
        match self {
            ServerTool::Calculator => "calculator",
            ServerTool::HttpGet(_) => "http_get",
        }
    }

    /// Its definition as the model sees it.
    pub fn def(&self) -> ToolDef {
        let (description, parameters) = match self {
            ServerTool::Calculator => (
                "Evaluates an arithmetic expression: + - * / % ^, parentheses, sqrt, abs, \
                 ln, log10, log2, exp, sin, cos, tan, floor, ceil, round, min, max, pi, e.",
                json!({
                    "type": "object",
                    "properties": {
                        "expression": {
                            "type": "string",
                            "description": "For example (17 * 23) + sqrt(16)",
                            // Arithmetic characters only: a model decoding under this
                            // pattern cannot wander into prose or comments.
                            "pattern": "^[0-9a-z+*/%^()., -]+$",
                            "minLength": 1,
                            "maxLength": 128,
                        }
                    },
                    "required": ["expression"],
                    "additionalProperties": false,
                }),
            ),
            ServerTool::HttpGet(h) => (
                "Fetches a URL with HTTP GET and returns the status and the start of the body.",
                json!({
                    "type": "object",
                    "properties": {
                        "url": {
                            "type": "string",
                            "description": format!("Must start with one of: {}", h.allowed().join(", ")),
                            // Decoding under this pattern keeps the model on the allowlist;
                            // `check` still enforces it on the normalised URL.
                            "pattern": h.pattern(),
                            "maxLength": 2048,
                        }
                    },
                    "required": ["url"],
                    "additionalProperties": false,
                }),
            ),
        };
        ToolDef {
            name: self.name().to_string(),
            description: Some(description.to_string()),
            parameters,
            server: true,
        }
    }

    /// Runs the tool; `Err` is a failure the model is told about.
    pub async fn run(&self, args: &Value) -> Result<String, RunError> {
        let arg = |name| {
            args.get(name)
                .and_then(Value::as_str)
                .ok_or(RunError::MissingArgument(name))
        };
        match self {
            ServerTool::Calculator => {
                Ok(calculator::evaluate(arg("expression")?).map(calculator::format_number)?)
            }
            ServerTool::HttpGet(h) => h.get(arg("url")?).await,
        }
    }
}

/// The server-side tools of a gateway and the loop's bounds.
pub struct ServerTools {
    /// Enabled tools.
    pub tools: Vec<ServerTool>,
    /// Tool executions per request before the model must answer in text.
    pub max_steps: usize,
    /// Time one execution may take.
    pub step_timeout: Duration,
}

impl Default for ServerTools {
    fn default() -> Self {
        Self::new(&ToolsConfig::default()).expect("no tools configured cannot fail")
    }
}

impl ServerTools {
    /// The tools `config` enables.
    pub fn new(config: &ToolsConfig) -> Result<Self, SetupError> {
        let mut tools = Vec::new();
        if config.calculator {
            tools.push(ServerTool::Calculator);
        }
        if let Some(h) = &config.http_get {
            tools.push(ServerTool::HttpGet(http_get::HttpGet::new(
                h.allow.clone(),
                h.max_bytes,
                config.step_timeout,
            )?));
        }
        Ok(Self {
            tools,
            max_steps: config.max_steps,
            step_timeout: config.step_timeout,
        })
    }

    /// The tool named `name`.
    pub fn get(&self, name: &str) -> Option<&ServerTool> {
        self.tools.iter().find(|t| t.name() == name)
    }

    /// Names, comma-separated, for error messages.
    pub fn names(&self) -> String {
        let n: Vec<&str> = self.tools.iter().map(ServerTool::name).collect();
        if n.is_empty() {
            "none".into()
        } else {
            n.join(", ")
        }
    }
}
