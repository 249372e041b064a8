//! Gerrit: REST client and JSON shapes.

mod client;
mod types;

pub use client::{CHANGE_OPTIONS, Gerrit, GerritError, change_path_id, strip_xssi};
pub use types::{
    AccountInfo, ApprovalInfo, ChangeInfo, ChangeMessageInfo, LabelInfo, ReviewInput, RevisionInfo,
    change_ref,
};
