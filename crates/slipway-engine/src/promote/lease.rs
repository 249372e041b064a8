//! The promotion lease: one object per production prefix (`<prefix>/.slipway-lease`) naming its
//! holder (host, pid, process start time, operation). Taken with a create-if-absent write, taken
//! over only by a write conditional on the version read (never delete-then-create): at once when
//! the holder is provably dead on this host, else when it has expired. Renewed while the
//! promotion runs; released only by its holder, after the release is recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use slipway_publish::{Bucket, ObjectVersion, join};
use slipway_store::owner;

use super::{PromoteError, refused};

/// The lease object in each production prefix (bookkeeping: clients never fetch it).
pub const LEASE: &str = ".slipway-lease";
/// A lease not renewed for this long is taken to be left by a crashed promoter on another host.
const TTL_SECS: i64 = 10 * 60;
/// Renewed this often while the promotion runs.
const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Holder {
    pub host: String,
    pub pid: i64,
    /// Kernel start time of `pid`: tells the holder from a later process reusing its pid.
    pub start: String,
    pub operation: i64,
    pub by: String,
    pub expires: i64,
}

impl Holder {
    pub fn me(operation: i64, by: &str) -> Holder {
        let (pid, start) = owner::current();
        Holder {
            host: hostname(),
            pid,
            start,
            operation,
            by: by.to_string(),
            expires: chrono::Utc::now().timestamp() + TTL_SECS,
        }
    }

    /// The same process and operation (e.g. a lease this process took before and lost track of).
    fn same_as(&self, other: &Holder) -> bool {
        (&self.host, self.pid, &self.start, self.operation)
            == (&other.host, other.pid, &other.start, other.operation)
    }

    /// Provably gone: on this host and its process no longer exists (or is another one).
    fn dead_here(&self) -> bool {
        self.host == hostname() && !owner::is_alive(self.pid, &self.start)
    }

    fn expired(&self) -> bool {
        self.expires <= chrono::Utc::now().timestamp()
    }

    fn body(&self) -> Result<Bytes, PromoteError> {
        serde_json::to_vec(self)
            .map(Bytes::from)
            .map_err(|e| refused(e.to_string()))
    }
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// A held lease of one prefix.
pub(crate) struct Lease {
    bucket: Bucket,
    key: String,
    holder: Holder,
    version: ObjectVersion,
}

impl Lease {
    pub async fn acquire(
        bucket: &Bucket,
        prefix: &str,
        me: &Holder,
    ) -> Result<Lease, PromoteError> {
        let key = join(prefix, LEASE);
        let body = me.body()?;
        for _ in 0..4 {
            if let Some(version) = bucket.create_if_absent(&key, body.clone()).await? {
                return Ok(Lease::held(bucket, &key, me, version));
            }
            let Some((bytes, version)) = bucket.get_versioned(&key).await? else {
                continue; // released meanwhile: create again
            };
            match serde_json::from_slice::<Holder>(&bytes) {
                Ok(h) if !(h.same_as(me) || h.dead_here() || h.expired()) => {
                    return Err(refused(format!(
                        "{}/{key}: promotion {} is running (pid {} on {}, by {}; lease renewed until {}); try again when it ends",
                        bucket.name,
                        h.operation,
                        h.pid,
                        h.host,
                        h.by,
                        chrono::DateTime::from_timestamp(h.expires, 0)
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_default()
                    )));
                }
                Ok(h) => tracing::warn!(
                    bucket = %bucket.name, %key, operation = h.operation, pid = h.pid, host = %h.host,
                    "taking over the lease of a promoter that is gone"
                ),
                Err(_) => {
                    tracing::warn!(bucket = %bucket.name, %key, "replacing an unreadable lease")
                }
            }
            if let Some(version) = bucket.replace_if(&key, &version, body.clone()).await? {
                return Ok(Lease::held(bucket, &key, me, version));
            }
            // Someone else wrote it between our read and write: look again.
        }
        Err(refused(format!(
            "{}/{key}: the promotion lease keeps changing hands; try again",
            bucket.name
        )))
    }

    fn held(bucket: &Bucket, key: &str, me: &Holder, version: ObjectVersion) -> Lease {
        Lease {
            bucket: bucket.clone(),
            key: key.to_string(),
            holder: me.clone(),
            version,
        }
    }

    /// Pushes the expiry forward; an error when the lease is no longer ours.
    async fn renew(&mut self) -> Result<(), PromoteError> {
        let mut next = self.holder.clone();
        next.expires = chrono::Utc::now().timestamp() + TTL_SECS;
        match self
            .bucket
            .replace_if(&self.key, &self.version, next.body()?)
            .await?
        {
            Some(v) => {
                self.version = v;
                self.holder = next;
                Ok(())
            }
            None => Err(refused(format!(
                "{}/{}: the promotion lease was taken by someone else",
                self.bucket.name, self.key
            ))),
        }
    }

    async fn release(&self) -> Result<(), PromoteError> {
        self.bucket.delete_if(&self.key, &self.version).await?;
        Ok(())
    }
}

/// The leases of one operation, renewed in the background until released.
pub(crate) struct Leases {
    held: Arc<tokio::sync::Mutex<Vec<Lease>>>,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Leases {
    /// Takes every lease (in a fixed order, so two promoters never deadlock), or none.
    pub async fn acquire(
        targets: &[(Bucket, String)],
        me: &Holder,
    ) -> Result<Leases, PromoteError> {
        let mut held = Vec::new();
        for (bucket, prefix) in targets {
            match Lease::acquire(bucket, prefix, me).await {
                Ok(l) => held.push(l),
                Err(e) => {
                    for l in &held {
                        let _ = l.release().await;
                    }
                    return Err(e);
                }
            }
        }
        let held = Arc::new(tokio::sync::Mutex::new(held));
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (held, lost) = (held.clone(), lost.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    for l in held.lock().await.iter_mut() {
                        if let Err(e) = l.renew().await {
                            tracing::error!("{e}");
                            lost.store(true, Ordering::SeqCst);
                        }
                    }
                }
            })
        };
        Ok(Leases {
            held,
            lost,
            renewer,
        })
    }

    /// Raised when a lease could not be renewed: uploads stop before their next object.
    pub fn lost_flag(&self) -> Arc<AtomicBool> {
        self.lost.clone()
    }

    /// An error once any lease could not be renewed: another promoter may be writing.
    pub fn check(&self) -> Result<(), PromoteError> {
        if self.lost.load(Ordering::SeqCst) {
            Err(refused(
                "a promotion lease was lost (not renewed in time or taken over); stopping",
            ))
        } else {
            Ok(())
        }
    }

    pub async fn release(self) -> Result<(), PromoteError> {
        self.renewer.abort();
        let mut first_err = None;
        for l in self.held.lock().await.iter() {
            if let Err(e) = l.release().await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_publish::BucketSpec;

    fn bucket(dir: &std::path::Path) -> Bucket {
        Bucket::open(
            &BucketSpec {
                name: "prod".into(),
                url: format!("file://{}", dir.display()),
                ..Default::default()
            },
            dir,
            None,
        )
        .unwrap()
    }

    async fn plant(b: &Bucket, h: &Holder) {
        b.put(&join("74", LEASE), h.body().unwrap()).await.unwrap();
    }

    #[tokio::test]
    async fn live_holders_refuse_dead_and_expired_ones_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let b = bucket(dir.path());
        let me = Holder::me(7, "me");

        // A live holder elsewhere: this very test's parent process, on another host name.
        let live = Holder {
            host: "other-host".into(),
            operation: 3,
            ..Holder::me(3, "them")
        };
        plant(&b, &live).await;
        let e = Lease::acquire(&b, "74", &me).await.err().expect("refused");
        assert!(e.to_string().contains("promotion 3 is running"), "{e}");

        // Dead on this host: a pid that does not exist. Taken at once, whatever its expiry.
        let dead = Holder {
            pid: i32::MAX as i64,
            ..Holder::me(4, "them")
        };
        plant(&b, &dead).await;
        let lease = Lease::acquire(&b, "74", &me).await.unwrap();
        lease.release().await.unwrap();

        // On another host: only once expired.
        let expired = Holder {
            host: "other-host".into(),
            expires: chrono::Utc::now().timestamp() - 1,
            ..Holder::me(5, "them")
        };
        plant(&b, &expired).await;
        let mut lease = Lease::acquire(&b, "74", &me).await.unwrap();
        lease.renew().await.unwrap();
        // Someone overwrites it (e.g. an operator): renewal notices instead of clobbering.
        plant(&b, &live).await;
        assert!(lease.renew().await.is_err());
        lease.release().await.unwrap();
        assert!(
            b.get(&join("74", LEASE)).await.unwrap().is_some(),
            "not ours to delete"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_takers_of_a_dead_lease_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let b = bucket(dir.path());
        let dead = Holder {
            pid: i32::MAX as i64,
            ..Holder::me(4, "them")
        };
        plant(&b, &dead).await;
        let mut tasks = tokio::task::JoinSet::new();
        for op in 0..8 {
            let b = b.clone();
            tasks.spawn(async move {
                Lease::acquire(&b, "74", &Holder::me(op, "racer"))
                    .await
                    .is_ok()
            });
        }
        let mut winners = 0;
        while let Some(w) = tasks.join_next().await {
            winners += usize::from(w.unwrap());
        }
        assert_eq!(winners, 1);
    }
}
