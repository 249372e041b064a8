//! Fixtures shared by the store's unit tests.

use crate::{NewRun, PublishedObject, Store};

/// A continuous run of project `p` that published `(bucket, path, sha256)` objects at prefix
/// `<milestone>`; its id.
pub(crate) async fn run_publishing(
    store: &Store,
    milestone: u32,
    objects: &[(&str, &str, &str)],
) -> i64 {
    let instance = format!("p/{milestone}/job");
    let id = store
        .create_run(
            &NewRun {
                instance: &instance,
                project: "p",
                job: "job",
                milestone,
                channel: "canary",
                branch: "main",
                commit: None,
                flow: "continuous",
            },
            &[],
        )
        .await
        .unwrap();
    let objects: Vec<PublishedObject> = objects
        .iter()
        .map(|(bucket, path, sha)| PublishedObject {
            bucket: bucket.to_string(),
            prefix: milestone.to_string(),
            path: path.to_string(),
            sha256: sha.to_string(),
            size: 1,
        })
        .collect();
    store
        .record_published(id, "publish", &objects)
        .await
        .unwrap();
    id
}

/// Makes `candidate` live in its milestone's production; the release id.
pub(crate) async fn release(store: &Store, candidate: i64) -> i64 {
    sqlx::query_scalar("INSERT INTO releases (project, milestone, candidate_id, kind, promoted_by, promoted_at) SELECT project, milestone, id, 'promote', 't', 'now' FROM candidates WHERE id = ? RETURNING id")
        .bind(candidate)
        .fetch_one(store.pool())
        .await
        .unwrap()
}
