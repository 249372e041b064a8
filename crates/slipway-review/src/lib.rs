//! Code review servers (Gerrit): the REST client Slipway polls and votes with, the JSON shapes
//! it reads, the vote history of a label on a patch set and its transitions, webhook deliveries,
//! and the message a presubmit run posts back. No knowledge of runs, the store or the server.

pub mod gerrit;
mod report;
mod time;
mod votes;
mod webhook;

pub use report::{ReportInput, report_message};
pub use time::{format_gerrit_time, parse_gerrit_time};
pub use votes::{VoteEvent, crossings, vote_events};
pub use webhook::{WebhookEvent, parse_webhook};
