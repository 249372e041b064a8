//! The release policy of issue 11. At its core pure functions of a milestone's facts: every
//! candidate's promotion state with its reasons, the candidate to promote now ([`evaluate`]),
//! and whether the live release must be rolled back ([`watch`]), with no I/O and no clock.
//! Around them (`act.rs`, `notify.rs`): the facts gathered from the store, and the decisions
//! carried out through the engine's crash-safe promotion, with the webhook notification owed.

mod act;
mod facts;
mod hold;
mod notify;
mod policy;
mod watch;

#[cfg(test)]
mod testing;

pub use act::{ACTOR, ActError, Report, evaluate_milestone, facts, states};
pub use facts::{CandidateFacts, Environment, Hold, MilestoneFacts, ReleaseFacts, ResultFacts};
pub use hold::{hold, unhold};
pub use policy::{CandidateState, Decision, Evaluation, State, SuiteStatus, Verdict, evaluate};
pub use slipway_config::ReleasePolicy;
pub use watch::{RollbackDecision, watch};
