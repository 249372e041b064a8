//! `slipway serve`: continuous triggers per milestone, the run queue and its dispatcher, the
//! HTTP API (v1, JSON), live logs, the release dashboard, and bearer-token auth.

pub mod dashboard;
