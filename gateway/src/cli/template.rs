//! `gatehouse template list|check|render`: the template author's workflow.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{json, Map, Value};

use crate::api::format::template_ref;
use crate::domain::{ChatRequest, ResponseFormat};
use crate::prompts::load_dir;

/// Default directory of templates, relative to the working directory.
pub const DEFAULT_DIR: &str = "prompts";

/// `gatehouse template ...`.
#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Validate every template of the directory; errors show file:line:column.
    Check {
        /// Template directory.
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// List the templates: name@version, model, description.
    List {
        /// Template directory.
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Show the messages a request naming the template would send.
    Render {
        /// `NAME` or `NAME@VERSION`.
        name: String,
        /// Template directory.
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
        /// A variable: `key=text` for a string, `key:=JSON` for any JSON value.
        #[arg(long = "var", value_name = "KEY=VALUE")]
        vars: Vec<String>,
        /// Print JSON: {"template", "model", "messages", "response_format"}.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `template` subcommand.
pub fn run(cmd: TemplateCommand) -> ExitCode {
    let dir = match &cmd {
        TemplateCommand::Check { dir }
        | TemplateCommand::List { dir }
        | TemplateCommand::Render { dir, .. } => dir.clone(),
    };
    let set = match load_dir(&dir) {
        Ok(s) => s,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return ExitCode::from(2);
        }
    };
    match cmd {
        TemplateCommand::Check { .. } => {
            let n: usize = set.templates.values().map(|v| v.len()).sum();
            println!("{}: {n} templates ok", dir.display());
            ExitCode::SUCCESS
        }
        TemplateCommand::List { .. } => {
            for t in set.templates.values().flat_map(|v| v.values()) {
                println!(
                    "{}\t{}\t{}",
                    t.id(),
                    t.model.as_deref().unwrap_or("-"),
                    t.description.as_deref().unwrap_or("")
                );
            }
            ExitCode::SUCCESS
        }
        TemplateCommand::Render {
            name, vars, json, ..
        } => {
            let variables = match parse_vars(&vars) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("gatehouse: {e}");
                    return ExitCode::from(2);
                }
            };
            let (name, version) = match template_ref(&name) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("gatehouse: {e}");
                    return ExitCode::from(2);
                }
            };
            let Some(t) = set.get(&name, version) else {
                eprintln!("gatehouse: no template `{name}` in {}", dir.display());
                return ExitCode::from(2);
            };
            let mut req = ChatRequest::default();
            if let Err(e) = t.apply(&mut req, &variables, t.model.is_some()) {
                eprintln!("gatehouse: {e}");
                return ExitCode::FAILURE;
            }
            let format = match &req.response_format {
                ResponseFormat::Text => "text".to_string(),
                ResponseFormat::JsonObject => "json_object".to_string(),
                ResponseFormat::JsonSchema { name, .. } => format!("json_schema {name}"),
            };
            if json {
                let messages: Vec<Value> = req
                    .messages
                    .iter()
                    .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
                    .collect();
                println!(
                    "{}",
                    json!({
                        "template": t.id(),
                        "model": t.model,
                        "messages": messages,
                        "response_format": format,
                    })
                );
            } else {
                println!(
                    "template {} (model {}, response_format {format})",
                    t.id(),
                    t.model.as_deref().unwrap_or("-"),
                );
                for m in &req.messages {
                    println!("--- {} ---\n{}", m.role.as_str(), m.content);
                }
            }
            ExitCode::SUCCESS
        }
    }
}

/// `key=text` and `key:=JSON` into an object.
fn parse_vars(vars: &[String]) -> Result<Value, String> {
    let mut out = Map::new();
    for v in vars {
        let (key, value) = if let Some((k, j)) = v.split_once(":=") {
            let value = serde_json::from_str(j)
                .map_err(|e| format!("--var {v}: the value after `:=` is not JSON: {e}"))?;
            (k, value)
        } else if let Some((k, s)) = v.split_once('=') {
            (k, Value::String(s.to_string()))
        } else {
            return Err(format!("--var {v}: expected KEY=TEXT or KEY:=JSON"));
        };
        if key.is_empty() {
            return Err(format!("--var {v}: the key is empty"));
        }
        out.insert(key.to_string(), value);
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_parse_as_text_or_json() {
        assert_eq!(
            parse_vars(&["a=x=y".into(), "b:=[1,2]".into()]).unwrap(),
            json!({"a": "x=y", "b": [1, 2]})
        );
        assert!(parse_vars(&["novalue".into()]).is_err());
        assert!(parse_vars(&["b:={".into()]).is_err());
        assert!(parse_vars(&["=x".into()]).is_err());
    }
}
