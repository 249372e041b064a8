//! The release policy of issue 11, as pure functions of a milestone's facts: every candidate's
//! promotion state with its reasons, the candidate to promote now ([`evaluate`]), and whether
//! the live release must be rolled back ([`watch`]). No I/O and no clock: the caller gathers
//! the facts (including `now`) from the store and acts on the decisions.

mod facts;
mod policy;
mod watch;

#[cfg(test)]
mod testing;

pub use facts::{CandidateFacts, Environment, Hold, MilestoneFacts, ReleaseFacts, ResultFacts};
pub use policy::{CandidateState, Decision, Evaluation, State, SuiteStatus, Verdict, evaluate};
pub use slipway_config::ReleasePolicy;
pub use watch::{RollbackDecision, watch};
