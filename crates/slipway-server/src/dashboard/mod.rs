//! Server-rendered HTML pages: the home matrix, a run page, a release page per milestone.
