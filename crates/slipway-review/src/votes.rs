//! The vote history of one label on one patch set, and its transitions. A presubmit fires when
//! the label's value (the highest vote any reviewer holds) crosses from below `min` to `min` or
//! more: counted over the whole history, so a poll, a webhook, a duplicate, a restart or an
//! overlapping query window that shows the same history again finds the same count, and a vote
//! removed and set again (a deliberate retry) adds one. A negative vote never reaches a `min`
//! of 1 or more.

use std::collections::BTreeMap;

use crate::gerrit::{AccountInfo, ChangeInfo, ChangeMessageInfo};
use crate::time::parse_gerrit_time;

/// One reviewer's vote on the label at a time (nanoseconds since the epoch, Gerrit's clock);
/// value 0 is "no vote" (removed or reset).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct VoteEvent {
    pub at: i64,
    pub account: String,
    pub value: i32,
}

fn account_key(a: &AccountInfo) -> Option<String> {
    a.account_id
        .map(|id| id.to_string())
        .or_else(|| a.username.clone())
        .or_else(|| a.email.clone())
}

/// Every vote event on `label` of `patchset` that `change` shows, merged with `known` (events
/// recorded from earlier observations), without duplicates, in time order:
/// - each vote message of the patch set (`Patch Set 3: Trybot-Ready+1`, `... -Trybot-Ready`),
///   and each removal (`Removed Trybot-Ready+1 by <GERRIT_ACCOUNT_1000001>`);
/// - for the current patch set, each reviewer's approval in `o=DETAILED_LABELS`;
/// - where the current approvals disagree with the newest event of a reviewer (a removal no
///   message told of), an event at the change's `updated` time with the approval's value.
pub fn vote_events(
    change: &ChangeInfo,
    label: &str,
    patchset: u32,
    known: &[VoteEvent],
) -> Vec<VoteEvent> {
    let mut events: BTreeMap<(String, i64), i32> = known
        .iter()
        .map(|e| ((e.account.clone(), e.at), e.value))
        .collect();
    let mut add = |account: String, at: i64, value: i32| {
        events.entry((account, at)).or_insert(value);
    };
    for m in &change.messages {
        if m.revision_number != Some(patchset) {
            continue;
        }
        let Some(at) = parse_gerrit_time(&m.date) else {
            continue;
        };
        for (account, value) in message_votes(m, label, change) {
            add(account, at, value);
        }
    }
    let current = change.current().map(|(ps, _, _)| ps);
    let mut approvals: BTreeMap<String, i32> = BTreeMap::new();
    if current == Some(patchset) {
        if let Some(info) = change.labels.get(label) {
            for a in &info.all {
                let (Some(account), value) = (account_key(&a.account), a.value.unwrap_or(0)) else {
                    continue;
                };
                approvals.insert(account.clone(), value);
                if let Some(at) = a.date.as_deref().and_then(parse_gerrit_time) {
                    add(account, at, value);
                }
            }
        }
        let updated = parse_gerrit_time(&change.updated).unwrap_or(0);
        let mut newest: BTreeMap<String, (i64, i32)> = BTreeMap::new();
        for ((account, at), value) in &events {
            let slot = newest.entry(account.clone()).or_insert((*at, *value));
            if *at >= slot.0 {
                *slot = (*at, *value);
            }
        }
        for (account, (at, value)) in newest {
            let now = approvals.get(&account).copied().unwrap_or(0);
            if now != value {
                events.insert((account, updated.max(at + 1)), now);
            }
        }
    }
    let mut out: Vec<VoteEvent> = events
        .into_iter()
        .map(|((account, at), value)| VoteEvent { at, account, value })
        .collect();
    out.sort();
    out
}

/// How many times the label's value (the highest vote held) went from below `min` to `min`
/// or more over `events`.
pub fn crossings(events: &[VoteEvent], min: i32) -> u32 {
    let mut sorted: Vec<&VoteEvent> = events.iter().collect();
    sorted.sort();
    let mut held: BTreeMap<&str, i32> = BTreeMap::new();
    let (mut met, mut count) = (false, 0);
    for e in sorted {
        held.insert(&e.account, e.value);
        let now = held.values().copied().max().unwrap_or(0) >= min;
        if now && !met {
            count += 1;
        }
        met = now;
    }
    count
}

/// The votes on `label` a change message records, as (account, value).
fn message_votes(m: &ChangeMessageInfo, label: &str, change: &ChangeInfo) -> Vec<(String, i32)> {
    let text = m.message.trim_start();
    let first = text.lines().next().unwrap_or("");
    if let Some(rest) = first.strip_prefix("Patch Set ") {
        // "Patch Set 3: Code-Review+2 Verified-1" (value 0 is written "-Code-Review").
        let Some((_, votes)) = rest.split_once(':') else {
            return Vec::new();
        };
        let Some(author) = m.author.as_ref().and_then(account_key) else {
            return Vec::new();
        };
        return votes
            .split_whitespace()
            .filter_map(|token| parse_vote(token, label))
            .map(|v| (author.clone(), v))
            .collect();
    }
    if first.starts_with("Removed") {
        // "Removed Trybot-Ready+1 by <GERRIT_ACCOUNT_1000001>", or one "* Label+1 by X" line
        // per vote when a reviewer is removed.
        return text
            .lines()
            .filter_map(|line| {
                let line = line.trim().trim_start_matches("* ");
                let line = line.strip_prefix("Removed ").unwrap_or(line);
                let (vote, who) = line.split_once(" by ")?;
                let value = parse_vote(vote.trim(), label)?;
                (value != 0).then_some(())?;
                Some((removed_account(who.trim(), change)?, 0))
            })
            .collect();
    }
    Vec::new()
}

/// `Label+2` -> 2, `Label-1` -> -1, `-Label` -> 0; anything else (another label) -> None.
fn parse_vote(token: &str, label: &str) -> Option<i32> {
    if token.strip_prefix('-') == Some(label) {
        return Some(0);
    }
    let rest = token.strip_prefix(label)?;
    let (sign, digits) = rest.split_at_checked(1)?;
    let n: i32 = digits.parse().ok()?;
    match sign {
        "+" => Some(n),
        "-" => Some(-n),
        _ => None,
    }
}

/// The account a removal message names: `<GERRIT_ACCOUNT_1000001>` (Gerrit 3.x templates), or
/// a name / `Name <email>` matched against the accounts the change shows.
fn removed_account(who: &str, change: &ChangeInfo) -> Option<String> {
    if let Some(id) = who
        .strip_prefix("<GERRIT_ACCOUNT_")
        .and_then(|r| r.strip_suffix('>'))
    {
        return id.parse::<i64>().ok().map(|id| id.to_string());
    }
    let accounts = change
        .labels
        .values()
        .flat_map(|l| l.all.iter().map(|a| &a.account))
        .chain(change.messages.iter().filter_map(|m| m.author.as_ref()));
    for a in accounts {
        let named = a.name.as_deref().is_some_and(|n| {
            who == n
                || a.email
                    .as_deref()
                    .is_some_and(|e| who == format!("{n} <{e}>"))
        });
        if named || a.username.as_deref() == Some(who) || a.email.as_deref() == Some(who) {
            return account_key(a);
        }
    }
    None
}

#[cfg(test)]
mod tests;
