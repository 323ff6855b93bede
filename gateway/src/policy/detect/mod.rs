//! Detectors behind the rule kinds; each works on a `&str` and reports byte offsets on
//! char boundaries, never copies of what it found.

pub mod context;
pub mod fold;
pub mod injection;
pub mod keywords;
pub mod loaded;
pub mod pii;
pub mod secrets;
pub mod semantic;
