use std::fmt;
use std::str::FromStr;

use serde::Serialize;

macro_rules! string_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} '{other}'", stringify!($name))),
                }
            }
        }
    };
}

string_enum!(RunStatus {
    Queued => "queued",
    Running => "running",
    Success => "success",
    Failure => "failure",
    Cancelled => "cancelled",
    Interrupted => "interrupted",
});

string_enum!(BuildStatus {
    Pending => "pending",
    Running => "running",
    Success => "success",
    Failure => "failure",
    Skipped => "skipped",
    Cancelled => "cancelled",
    Interrupted => "interrupted",
});

impl RunStatus {
    pub fn is_finished(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

impl BuildStatus {
    pub fn is_finished(self) -> bool {
        !matches!(self, BuildStatus::Pending | BuildStatus::Running)
    }
}
