//! Dashboard routes (filled in when the dashboard lands).

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
