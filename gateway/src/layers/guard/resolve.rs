//! Picks the request's policy from the version in force and pins it on the request.

use std::sync::Arc;

use crate::domain::ChatRequest;
use crate::error::ApiError;
use crate::layers::step::{Next, Step};
use crate::layers::ChatStream;
use crate::policy::{PolicyStore, Subject};

/// Sets [`crate::domain::GuardContext::set_policy`]; the request keeps that version to its
/// end, whatever reloads happen meanwhile. `None` turns guardrails off.
pub struct PolicyResolve {
    store: Option<Arc<PolicyStore>>,
}

impl PolicyResolve {
    /// Resolves from `store`.
    pub fn new(store: Option<Arc<PolicyStore>>) -> Self {
        Self { store }
    }
}

impl PolicyResolve {
    fn resolve(&self, req: &ChatRequest) -> Result<(), ApiError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let set = store.current();
        // A tenant pinned to a policy runs under it, whatever `applies_to` says.
        if let Some(p) = &req.caller.principal {
            if let Some(id) = &p.settings.policy {
                let policy = set
                    .policies
                    .iter()
                    .find(|x| &*x.id == id.as_str())
                    .ok_or_else(|| ApiError::PolicyNotFound {
                        policy: id.clone(),
                        tenant: p.tenant.clone(),
                    })?;
                req.guard.set_policy(policy.clone(), set.version.clone());
                return Ok(());
            }
        }
        let subject = Subject {
            tenant: req.caller.tenant.as_deref(),
            api_key: req.caller.api_key.as_deref(),
            route: &req.caller.route,
            model: &req.model,
        };
        if let Some(p) = set.select(&subject) {
            req.guard.set_policy(p, set.version.clone());
        }
        Ok(())
    }
}

impl Step for PolicyResolve {
    const NAME: &'static str = "policy";

    async fn call(&self, req: ChatRequest, next: Next) -> Result<ChatStream, ApiError> {
        self.resolve(&req)?;
        next.run(req).await
    }
}
