use slipway_store::BuildStatus;

/// Progress of a run, for live displays. Logs go to files; these are the milestones.
#[derive(Debug, Clone)]
pub enum Event {
    RunStarted {
        run_id: i64,
        builds: Vec<String>,
    },
    BuildStarted {
        build: String,
    },
    StepStarted {
        build: String,
        idx: usize,
        total: usize,
        command: String,
    },
    BuildFinished {
        build: String,
        status: BuildStatus,
        error: Option<String>,
    },
}

/// An event of one run: every consumer (the CLI's progress, the server's live views) gets the
/// run it belongs to.
#[derive(Debug, Clone)]
pub struct RunEvent {
    pub run_id: i64,
    pub event: Event,
}
