//! Server-rendered HTML pages: the home matrix, a run page, a release page per milestone.
//! (Placeholder until the dashboard branch lands.)

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("template: {0}")]
    Template(String),
}

pub struct Dashboard;

impl Dashboard {
    pub fn new() -> Result<Dashboard, DashboardError> {
        Ok(Dashboard)
    }
}
