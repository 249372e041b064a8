use super::*;
use crate::Store;

fn new_run(commit: &str) -> NewRun<'_> {
    NewRun {
        instance: "p/74/presubmit",
        project: "p",
        job: "presubmit",
        milestone: 74,
        channel: "canary",
        branch: "main",
        commit: Some(commit),
        flow: "presubmit",
    }
}

fn key(patchset: u32) -> ReviewRunKey<'static> {
    ReviewRunKey {
        change_number: 12,
        patchset,
        revision: "abc",
        job: "presubmit",
    }
}

fn origin() -> RunOrigin {
    RunOrigin {
        trigger: "review".into(),
        ..RunOrigin::default()
    }
}

#[tokio::test]
async fn a_crossing_queues_one_run_however_many_observers_race() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let builds = vec![("a".to_string(), vec![])];
    let first = store
        .enqueue_review_run(&new_run("abc"), &builds, &origin(), key(1), 0, 1)
        .await
        .unwrap();
    // A second observer that read `fired = 0` before the first wrote loses.
    let second = store
        .enqueue_review_run(&new_run("abc"), &builds, &origin(), key(1), 0, 1)
        .await
        .unwrap();
    assert!(first.is_some());
    assert_eq!(second, None);
    assert_eq!(store.review_fired(12, 1, "presubmit").await.unwrap(), 1);
    // The next crossing (a retry) is one more run, from the value read.
    let retry = store
        .enqueue_review_run(&new_run("abc"), &builds, &origin(), key(1), 1, 2)
        .await
        .unwrap();
    assert!(retry.is_some());
    assert!(
        !store
            .consume_review_crossing(12, 1, "presubmit", 1, 2)
            .await
            .unwrap()
    );
    let runs = store.review_runs_of(12).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].vote_state, "pending");
    assert_eq!(store.queued_runs().await.unwrap().len(), 2);
    // A newer patch set supersedes both (they are queued).
    assert_eq!(store.review_runs_superseded(12, 2).await.unwrap().len(), 2);
    assert!(
        store
            .review_runs_superseded(12, 1)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn votes_history_cursor_and_vote_states() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let votes = vec![(5, "1000001".to_string(), 1), (9, "1000001".to_string(), 0)];
    store
        .add_review_votes(12, 1, "Trybot-Ready", &votes)
        .await
        .unwrap();
    store
        .add_review_votes(12, 1, "Trybot-Ready", &votes[..1])
        .await
        .unwrap();
    assert_eq!(
        store.review_votes(12, 1, "Trybot-Ready").await.unwrap(),
        votes
    );
    assert!(
        store
            .review_votes(12, 2, "Trybot-Ready")
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(store.review_cursor("g").await.unwrap(), None);
    store
        .set_review_cursor("g", "2026-11-26 10:00:00.000")
        .await
        .unwrap();
    store
        .set_review_cursor("g", "2026-11-26 11:00:00.000")
        .await
        .unwrap();
    assert_eq!(
        store.review_cursor("g").await.unwrap().as_deref(),
        Some("2026-11-26 11:00:00.000")
    );

    let builds = vec![("a".to_string(), vec![])];
    let id = store
        .enqueue_review_run(&new_run("abc"), &builds, &origin(), key(1), 0, 1)
        .await
        .unwrap()
        .unwrap();
    assert!(store.votes_due(0).await.unwrap().is_empty(), "still queued");
    store.cancel_queued(id, "test").await.unwrap();
    let due = store.votes_due(0).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].status, RunStatus::Cancelled);
    store
        .set_review_vote(
            id,
            &VoteUpdate {
                state: "sending",
                attempts: 1,
                next_at: Some(1000),
                ..VoteUpdate::default()
            },
        )
        .await
        .unwrap();
    assert!(store.votes_due(999).await.unwrap().is_empty());
    assert_eq!(store.votes_due(1000).await.unwrap().len(), 1);
    store
        .set_review_vote(
            id,
            &VoteUpdate {
                state: "posted",
                value: Some(-1),
                attempts: 2,
                ..VoteUpdate::default()
            },
        )
        .await
        .unwrap();
    assert!(store.votes_due(i64::MAX).await.unwrap().is_empty());
    let r = store.review_run(id).await.unwrap().unwrap();
    assert_eq!((r.vote_state.as_str(), r.vote_value), ("posted", Some(-1)));
    store.copy_review_run(id, 999).await.unwrap();

    let change = ReviewChange {
        change_number: 12,
        project: "p".into(),
        branch: "main".into(),
        change_id: "I1".into(),
        subject: "s".into(),
        owner: "alice".into(),
        status: "NEW".into(),
        current_patchset: 1,
        current_revision: "abc".into(),
        url: "http://g/c/12".into(),
        updated: "2026-11-26 10:00:00.000000000".into(),
    };
    store.save_review_change(&change).await.unwrap();
    store
        .save_review_change(&ReviewChange {
            current_patchset: 2,
            ..change.clone()
        })
        .await
        .unwrap();
    let seen = store.recent_review_changes(10).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].current_patchset, 2);
    assert!(store.review_change(13).await.unwrap().is_none());
}
