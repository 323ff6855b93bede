//! Prompt templates (`prompts/*.yaml`): YAML front matter (name, version, the JSON Schema of
//! the variables, default model and sampling, optional `response_format`) and a minijinja
//! body whose `system` and `user` blocks become messages. See `docs/templates.md`.

pub mod load;
pub mod render;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::domain::{ResponseFormat, Sampling};

pub use load::{load_dir, parse};
pub use render::Rendered;

/// One version of one template, compiled.
pub struct Template {
    /// Name clients use.
    pub name: String,
    /// Version; a request may pin it (`name@version`), else the highest wins.
    pub version: u32,
    /// What it is for.
    pub description: Option<String>,
    /// The file it came from.
    pub file: PathBuf,
    /// Model used when the client names the template as its model.
    pub model: Option<String>,
    /// Sampling defaults; the client's own values win.
    pub sampling: Sampling,
    /// JSON Schema of the variables.
    pub variables: serde_json::Value,
    /// Shape of the answer, unless the client asks for another.
    pub response_format: ResponseFormat,
    validator: jsonschema::Validator,
    env: minijinja::Environment<'static>,
    blocks: Blocks,
}

/// Which message blocks the body defines; neither means the whole body is the user message.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Blocks {
    /// `{% block system %}`.
    pub system: bool,
    /// `{% block user %}`.
    pub user: bool,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl Template {
    /// `name@version`, as recorded for audit.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// The blocks the body defines.
    pub fn blocks(&self) -> Blocks {
        self.blocks
    }
}

/// Every template of the directory, one version of the directory.
#[derive(Debug)]
pub struct TemplateSet {
    /// name → version → template.
    pub templates: BTreeMap<String, BTreeMap<u32, Arc<Template>>>,
    /// [`crate::reload::fingerprint`] of the directory.
    pub version: String,
    /// The directory.
    pub dir: PathBuf,
    /// When it was loaded.
    pub loaded_at: SystemTime,
}

impl TemplateSet {
    /// `name` at `version`, or its highest version.
    pub fn get(&self, name: &str, version: Option<u32>) -> Option<&Arc<Template>> {
        let versions = self.templates.get(name)?;
        match version {
            Some(v) => versions.get(&v),
            None => versions.values().next_back(),
        }
    }
}

impl TemplateSet {
    /// Like [`TemplateSet::get`], with a not-found error that lists what is loaded: the
    /// name's versions when only the version is missing, every `name@version` otherwise.
    pub fn resolve(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Arc<Template>, TemplateError> {
        if let Some(t) = self.get(name, version) {
            return Ok(t.clone());
        }
        let known = match self.templates.get(name) {
            Some(v) => format!(
                "its versions are {}",
                v.keys().map(u32::to_string).collect::<Vec<_>>().join(", ")
            ),
            None => format!(
                "loaded: {}",
                self.templates
                    .values()
                    .flat_map(|v| v.values().map(|t| t.id()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let version = version.map(|v| format!("@{v}")).unwrap_or_default();
        Err(TemplateError::NotFound(format!(
            "no template `{name}{version}`; {known}"
        )))
    }
}

impl crate::reload::Versioned for TemplateSet {
    fn version(&self) -> &str {
        &self.version
    }
}

/// The templates in force, swapped whole on reload.
pub type TemplateStore = crate::reload::Store<TemplateSet>;

/// Errors of the templates area, as a request meets them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// No template by that name (and version).
    #[error("{0}")]
    NotFound(String),
    /// The variables do not match the template's schema.
    #[error("template {template}: invalid variables: {}", errors.join("; "))]
    Variables {
        /// `name@version`.
        template: String,
        /// One line per problem, each naming the field (`variables.record: ...`).
        errors: Vec<String>,
    },
    /// Rendering failed (e.g. an undefined variable the schema did not require).
    #[error("template {template}: {message}")]
    Render {
        /// `name@version`.
        template: String,
        /// minijinja's message, with the line.
        message: String,
    },
    /// The template cannot serve this request.
    #[error("template {template}: {message}")]
    Unusable {
        /// `name@version`.
        template: String,
        /// What minijinja or the front matter check reported.
        message: String,
    },
}

/// Template names: what may appear in `template:NAME` and in a file's front matter.
pub fn valid_template_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
