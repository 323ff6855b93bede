//! The loaded policies, which one applies to a request, and the atomic swap on reload.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use super::rules::Policy;

/// Which requests a policy applies to; each non-empty list must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AppliesTo {
    /// Tenant ids (set by the authentication layer).
    pub tenants: Vec<String>,
    /// `sha256:<hex>` of bearer tokens.
    pub api_keys: Vec<String>,
    /// Route paths.
    pub routes: Vec<String>,
    /// Model ids, `*` as wildcard.
    pub models: Vec<String>,
}

/// What a request is, for policy selection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    /// Tenant id, once authentication resolves one.
    pub tenant: Option<&'a str>,
    /// `sha256:<hex>` of the bearer token, if any.
    pub api_key: Option<&'a str>,
    /// Route path.
    pub route: &'a str,
    /// Requested model id.
    pub model: &'a str,
}

impl AppliesTo {
    /// Does every given list match?
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        let any = |list: &[String], v: Option<&str>| {
            list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
        };
        any(&self.tenants, s.tenant)
            && any(&self.api_keys, s.api_key)
            && any(&self.routes, Some(s.route))
            && (self.models.is_empty() || self.models.iter().any(|g| glob(g, s.model)))
    }

    /// How many lists are given: more is more specific.
    pub fn specificity(&self) -> usize {
        [&self.tenants, &self.api_keys, &self.routes, &self.models]
            .iter()
            .filter(|l| !l.is_empty())
            .count()
    }
}

/// `*` matches any run of characters; everything else literally.
pub fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// One consistent version of all policies.
#[derive(Debug)]
pub struct PolicySet {
    /// Policies by file name.
    pub policies: Vec<Arc<Policy>>,
    /// `sha256:<hex>` over the directory's files.
    pub version: String,
    /// Where they were read from.
    pub dir: PathBuf,
    /// When this version was loaded.
    pub loaded_at: SystemTime,
}

impl PolicySet {
    /// The policy for `subject`: the matching non-default policy with the highest priority,
    /// then the most lists given, then the smallest id; else the default policy.
    pub fn select(&self, subject: &Subject<'_>) -> Option<Arc<Policy>> {
        self.policies
            .iter()
            .filter(|p| !p.default && p.applies_to.matches(subject))
            .max_by(|a, b| {
                a.priority
                    .cmp(&b.priority)
                    .then(a.applies_to.specificity().cmp(&b.applies_to.specificity()))
                    .then(b.id.cmp(&a.id))
            })
            .or_else(|| self.default_policy())
            .cloned()
    }

    /// The default policy, if one is marked.
    pub fn default_policy(&self) -> Option<&Arc<Policy>> {
        self.policies.iter().find(|p| p.default)
    }

    /// The policy with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Policy>> {
        self.policies.iter().find(|p| &*p.id == id)
    }

    /// The version shortened for headers: the first 12 hex digits.
    pub fn short_version(&self) -> &str {
        let hex = self.version.trim_start_matches("sha256:");
        &hex[..hex.len().min(12)]
    }
}

/// The current [`PolicySet`], swapped whole on reload.
pub type PolicyStore = crate::reload::Store<PolicySet>;

impl crate::reload::Versioned for PolicySet {
    fn version(&self) -> &str {
        &self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("smollm2-*", "smollm2-135m"));
        assert!(glob("*", "x"));
        assert!(glob("a*b*c", "a123b45c"));
        assert!(!glob("a*b*c", "a123c"));
        assert!(!glob("ab*ba", "aba"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
    }

    #[test]
    fn applies_to_needs_every_list() {
        let a = AppliesTo {
            routes: vec!["/v1/chat/completions".into()],
            models: vec!["qwen*".into()],
            ..Default::default()
        };
        let mut s = Subject {
            route: "/v1/chat/completions",
            model: "qwen-1.5b",
            ..Default::default()
        };
        assert!(a.matches(&s));
        s.model = "smollm2";
        assert!(!a.matches(&s));
        let t = AppliesTo {
            tenants: vec!["acme".into()],
            ..Default::default()
        };
        assert!(!t.matches(&s), "no tenant never matches a tenant list");
        s.tenant = Some("acme");
        assert!(t.matches(&s));
    }
}
