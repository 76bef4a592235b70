//! Reader policies: which of a camera's frames a reader takes. Chosen per reader in the config
//! (`policy = "newest" | "every" | "max-fps"`, `max-fps = N`), reported in status.

use core::fmt;

/// Which frames a reader takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReaderPolicy {
    /// Only the newest frame: frames that arrived while the reader was busy are skipped
    /// unread. For work whose answer is only worth having about the present (detection,
    /// preview). The default for algo, preview and user readers.
    Newest,
    /// Every frame, oldest first, through a bounded queue: lossless while the reader keeps up
    /// on average; when the queue is full the oldest queued frame is overwritten (counted),
    /// capture never waits. The recorder's default.
    Every,
    /// At most this many frames a second, evenly spaced; the frames in between are skipped
    /// without being read (and the reader does not wake up for them).
    MaxFps(f64),
}

impl ReaderPolicy {
    /// Wire code in control replies: 1 newest, 2 every, 3 max-fps.
    pub fn code(self) -> u32 {
        match self {
            ReaderPolicy::Newest => 1,
            ReaderPolicy::Every => 2,
            ReaderPolicy::MaxFps(_) => 3,
        }
    }

    /// The policy's name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            ReaderPolicy::Newest => "newest",
            ReaderPolicy::Every => "every",
            ReaderPolicy::MaxFps(_) => "max-fps",
        }
    }

    /// Parses a policy name plus the `max-fps` value that goes with `max-fps` (as in the
    /// config and on command lines: `newest`, `every`, `max-fps` with `Some(n)`, or
    /// `max-fps=N` alone). The error says what is allowed.
    pub fn parse(name: &str, max_fps: Option<f64>) -> Result<ReaderPolicy, String> {
        let (name, inline) = match name.split_once('=') {
            Some((name, value)) => {
                let value: f64 =
                    value.trim().parse().map_err(|_| format!("`{value}` is not a number of frames per second"))?;
                (name.trim(), Some(value))
            }
            None => (name.trim(), None),
        };
        let fps = inline.or(max_fps);
        match (name, fps) {
            ("newest", None) => Ok(ReaderPolicy::Newest),
            ("every", None) => Ok(ReaderPolicy::Every),
            ("newest" | "every", Some(_)) => {
                Err(format!("`max-fps` goes only with policy \"max-fps\", not with \"{name}\""))
            }
            ("max-fps", Some(fps)) if fps.is_finite() && fps > 0.0 && fps <= 1000.0 => Ok(ReaderPolicy::MaxFps(fps)),
            ("max-fps", Some(fps)) => Err(format!("invalid max-fps {fps}: allowed more than 0 up to 1000")),
            ("max-fps", None) => Err("policy \"max-fps\" needs `max-fps = <frames per second>`".into()),
            (other, _) => Err(format!("unknown policy `{other}`: allowed \"newest\", \"every\", \"max-fps\"")),
        }
    }
}

impl fmt::Display for ReaderPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReaderPolicy::MaxFps(fps) => write!(f, "max-fps={fps}"),
            other => f.write_str(other.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names parse, `max-fps` needs its value and only it takes one.
    #[test]
    fn policies_parse_with_clear_errors() {
        assert_eq!(ReaderPolicy::parse("newest", None), Ok(ReaderPolicy::Newest));
        assert_eq!(ReaderPolicy::parse("every", None), Ok(ReaderPolicy::Every));
        assert_eq!(ReaderPolicy::parse("max-fps", Some(5.0)), Ok(ReaderPolicy::MaxFps(5.0)));
        assert_eq!(ReaderPolicy::parse("max-fps=2.5", None), Ok(ReaderPolicy::MaxFps(2.5)));
        assert!(ReaderPolicy::parse("max-fps", None).expect_err("must be refused").contains("needs `max-fps"));
        assert!(ReaderPolicy::parse("max-fps", Some(0.0))
            .expect_err("must be refused")
            .contains("allowed more than 0"));
        assert!(ReaderPolicy::parse("every", Some(3.0)).expect_err("must be refused").contains("only with policy"));
        assert!(ReaderPolicy::parse("latest", None)
            .expect_err("must be refused")
            .contains("allowed \"newest\", \"every\""));
    }
}
