use serde_json::{Value, json};

use super::*;

const ALICE: i64 = 1000001;
const BOB: i64 = 1000002;

fn t(sec: u32) -> String {
    format!("2026-11-26 10:00:{sec:02}.000000000")
}

/// A change on patch set `ps` whose messages are `(author, second, text, patch set)` and whose
/// current approvals on `label` are `(account, value, second)`.
fn change(
    ps: u32,
    label: &str,
    messages: &[(i64, u32, &str, u32)],
    approvals: &[(i64, i32, u32)],
    updated: u32,
) -> ChangeInfo {
    let msgs: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, (a, s, text, p))| {
            json!({"id": format!("m{i}"), "author": {"_account_id": a}, "date": t(*s),
                   "message": text, "_revision_number": p})
        })
        .collect();
    let all: Vec<Value> = approvals
        .iter()
        .map(|(a, v, s)| json!({"_account_id": a, "value": v, "date": t(*s)}))
        .collect();
    serde_json::from_value(json!({
        "id": "p~1", "project": "p", "branch": "main", "subject": "s", "status": "NEW",
        "updated": t(updated), "_number": 1, "owner": {"_account_id": ALICE},
        "current_revision": "abc", "revisions": {"abc": {"_number": ps}},
        "labels": {label: {"all": all}}, "messages": msgs
    }))
    .unwrap()
}

fn count(c: &ChangeInfo, label: &str, ps: u32, min: i32) -> (u32, Vec<VoteEvent>) {
    let events = vote_events(c, label, ps, &[]);
    (crossings(&events, min), events)
}

#[test]
fn one_vote_is_one_crossing_however_often_it_is_seen() {
    let c = change(
        1,
        "Trybot-Ready",
        &[(ALICE, 1, "Patch Set 1: Trybot-Ready+1", 1)],
        &[(ALICE, 1, 1)],
        1,
    );
    let (n, events) = count(&c, "Trybot-Ready", 1, 1);
    assert_eq!(n, 1);
    assert_eq!(
        events.len(),
        1,
        "the message and the approval are one event"
    );
    // Seen again (a duplicate webhook, an overlapping poll, a restart): same history.
    let again = vote_events(&c, "Trybot-Ready", 1, &events);
    assert_eq!(again, events);
    assert_eq!(crossings(&again, 1), 1);
}

#[test]
fn a_vote_reset_and_set_again_is_a_second_crossing() {
    let c = change(
        1,
        "Trybot-Ready",
        &[
            (ALICE, 1, "Patch Set 1: Trybot-Ready+1", 1),
            (ALICE, 2, "Patch Set 1: -Trybot-Ready\n\nretry", 1),
            (ALICE, 3, "Patch Set 1: Trybot-Ready+1", 1),
        ],
        &[(ALICE, 1, 3)],
        3,
    );
    assert_eq!(count(&c, "Trybot-Ready", 1, 1).0, 2);
}

#[test]
fn a_deleted_vote_by_template_or_name_re_arms() {
    for by in ["<GERRIT_ACCOUNT_1000001>", "Alice Doe <alice@example.org>"] {
        let mut c = change(
            1,
            "Trybot-Ready",
            &[
                (ALICE, 1, "Patch Set 1: Trybot-Ready+1", 1),
                (BOB, 2, &format!("Removed Trybot-Ready+1 by {by}\n"), 1),
                (ALICE, 3, "Patch Set 1: Trybot-Ready+1", 1),
            ],
            &[(ALICE, 1, 3)],
            3,
        );
        c.messages[0].author = Some(AccountInfo {
            account_id: Some(ALICE),
            name: Some("Alice Doe".into()),
            email: Some("alice@example.org".into()),
            username: None,
        });
        assert_eq!(count(&c, "Trybot-Ready", 1, 1).0, 2, "removed by {by}");
    }
}

#[test]
fn a_removal_no_message_tells_of_is_taken_from_the_approvals() {
    let first = change(
        1,
        "Trybot-Ready",
        &[(ALICE, 1, "Patch Set 1: Trybot-Ready+1", 1)],
        &[(ALICE, 1, 1)],
        1,
    );
    let (_, known) = count(&first, "Trybot-Ready", 1, 1);
    // The next observation: the vote is gone, and nothing in the messages says so.
    let later = change(
        1,
        "Trybot-Ready",
        &[(ALICE, 1, "Patch Set 1: Trybot-Ready+1", 1)],
        &[(ALICE, 0, 5)],
        5,
    );
    let known = vote_events(&later, "Trybot-Ready", 1, &known);
    assert_eq!(crossings(&known, 1), 1);
    assert_eq!(known.last().map(|e| e.value), Some(0));
    // Set again: a new crossing.
    let again = change(
        1,
        "Trybot-Ready",
        &[
            (ALICE, 1, "Patch Set 1: Trybot-Ready+1", 1),
            (ALICE, 7, "Patch Set 1: Trybot-Ready+1", 1),
        ],
        &[(ALICE, 1, 7)],
        7,
    );
    assert_eq!(
        crossings(&vote_events(&again, "Trybot-Ready", 1, &known), 1),
        2
    );
}

#[test]
fn negative_votes_and_other_labels_never_match() {
    let c = change(
        1,
        "Code-Review",
        &[
            (ALICE, 1, "Patch Set 1: Code-Review-2", 1),
            (BOB, 2, "Patch Set 1: Verified+2 Code-Review+1", 1),
        ],
        &[(ALICE, -2, 1), (BOB, 1, 2)],
        2,
    );
    assert_eq!(count(&c, "Code-Review", 1, 2).0, 0);
    assert_eq!(count(&c, "Code-Review", 1, 1).0, 1, "Bob's +1");
    let c = change(
        1,
        "Code-Review",
        &[
            (ALICE, 1, "Patch Set 1: Code-Review-2", 1),
            (ALICE, 2, "Patch Set 1: Code-Review+2", 1),
        ],
        &[(ALICE, 2, 2)],
        2,
    );
    assert_eq!(count(&c, "Code-Review", 1, 2).0, 1);
    assert_eq!(parse_vote("Code-Review-2", "Code-Review"), Some(-2));
    assert_eq!(parse_vote("Code-Reviewer+2", "Code-Review"), None);
    assert_eq!(parse_vote("Code-Review+x", "Code-Review"), None);
}

#[test]
fn raising_a_held_vote_is_not_a_crossing_but_losing_every_vote_is() {
    let c = change(
        1,
        "Trybot-Ready",
        &[
            (ALICE, 1, "Patch Set 1: Trybot-Ready+1", 1),
            (BOB, 2, "Patch Set 1: Trybot-Ready+1", 1),
            (ALICE, 3, "Patch Set 1: -Trybot-Ready", 1),
            (ALICE, 4, "Patch Set 1: Trybot-Ready+1", 1),
            (BOB, 5, "Patch Set 1: -Trybot-Ready", 1),
            (ALICE, 6, "Patch Set 1: -Trybot-Ready", 1),
            (BOB, 7, "Patch Set 1: Trybot-Ready+1", 1),
        ],
        &[(ALICE, 0, 6), (BOB, 1, 7)],
        7,
    );
    assert_eq!(count(&c, "Trybot-Ready", 1, 1).0, 2);
}

#[test]
fn votes_on_another_patch_set_do_not_count() {
    let c = change(
        2,
        "Trybot-Ready",
        &[
            (ALICE, 1, "Patch Set 1: Trybot-Ready+1", 1),
            (ALICE, 2, "Uploaded patch set 2.", 2),
        ],
        &[],
        2,
    );
    assert_eq!(count(&c, "Trybot-Ready", 2, 1).0, 0);
    assert_eq!(
        count(&c, "Trybot-Ready", 1, 1).0,
        1,
        "patch set 1's own history"
    );
}
