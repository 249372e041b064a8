//! Publishing artifact trees to buckets (`file://`, `s3://`, `gs://`) so that clients never see a
//! half-written tree: objects go up in the safe order of their format (apt: pool, by-hash,
//! indices, signatures, `InRelease` last; simplestreams: image files, products, `index.json`
//! last), unchanged ones are skipped, and what was written is read back.

mod bucket;
mod checked;
mod conditional;
mod order;
mod publish;
mod streams;

pub use bucket::{Auth, Bucket, BucketSpec, Credentials, PublishError, ServiceAccountKey};
pub use conditional::{FolderLock, ObjectVersion};
pub use order::{publish_rank, sort_for_publish};
pub use publish::{
    MANIFEST, ObjectEntry, PublishOptions, PublishReport, Source, join, publish_dir, read_manifest,
    scan_dir, upload,
};
pub use streams::{StreamsOptions, StreamsReport, build_streams, version_for};
