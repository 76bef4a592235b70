//! The readers of a camera: `[[camera.reader]]` (user readers) and the list of a camera's
//! configured readers ([`ReaderSpec`]) that validation, `ctl up` and the reader loop use.

use super::reader_table::{reader_table, ReaderSettings};
use super::{AlgoConfig, CameraConfig, PreviewConfig, RecorderConfig, StreamerConfig};
use crate::names::{ProcessRole, Role};
use crate::policy::ReaderPolicy;

reader_table! {
    /// `[[camera.reader]]`: a user reader, by the role name its program opens the camera with.
    pub struct UserReaderConfig {
        /// Role name (what `ctl status` lists, and what the program passes when it opens the
        /// camera).
        pub name: String,
        ..policy,
        ..queue_depth("super::default_algo_queue_depth"),
        /// Program and arguments `ctl up` starts (and restarts after a crash) for this reader;
        /// none = the reader is started by hand. Relative program paths are relative to the config
        /// file's folder when they contain a `/`.
        #[serde(default)]
        pub command: Vec<String>,
    }
}

/// One reader of a camera as configured: built in or a user reader.
#[derive(Debug, Clone, PartialEq)]
pub struct ReaderSpec {
    /// Role name.
    pub role: Role,
    /// Queue depth.
    pub queue_depth: u32,
    /// Policy (the role's default when the config sets none).
    pub policy: ReaderPolicy,
    /// Config key of the reader's table, for messages (`camera[0].algo`, `camera[0].reader[1]`).
    pub key: String,
}

impl CameraConfig {
    /// Every configured reader (built in and user readers) with its resolved policy. Policies
    /// that do not parse (only possible before validation) fall back to the role's default.
    pub fn readers(&self) -> Vec<ReaderSpec> {
        self.reader_entries()
            .into_iter()
            .map(|r| ReaderSpec {
                role: r.role,
                queue_depth: r.queue_depth,
                policy: r.policy.unwrap_or(ReaderPolicy::Newest),
                key: r.key,
            })
            .collect()
    }

    /// The reader `role` as configured, if it is.
    pub fn reader_spec(&self, role: &Role) -> Option<ReaderSpec> {
        self.readers().into_iter().find(|r| &r.role == role)
    }

    /// Every configured reader with its policy as parsed (validation reports its error).
    pub(super) fn reader_entries(&self) -> Vec<ReaderEntry> {
        let built_in = [
            (ProcessRole::Algo, self.algo.as_ref().map(AlgoConfig::reader)),
            (ProcessRole::Preview, self.preview.as_ref().map(PreviewConfig::reader)),
            (ProcessRole::Recorder, self.recorder.as_ref().map(RecorderConfig::reader)),
            (ProcessRole::Streamer, self.streamer.as_ref().map(StreamerConfig::reader)),
        ];
        let mut readers = Vec::new();
        for (role, settings) in built_in {
            let Some(settings) = settings else { continue };
            let default = if role == ProcessRole::Recorder { ReaderPolicy::Every } else { ReaderPolicy::Newest };
            readers.push(ReaderEntry::new(role.into(), role.name().to_string(), settings, default));
        }
        if let Some(frames) = self.export.as_ref().and_then(|e| e.frames.as_ref()) {
            // The bridge reads the frames it exports like any reader: one of max-readers.
            let role = Role::new(crate::names::BRIDGE_ROLE).unwrap_or_else(|_| Role::from(ProcessRole::Algo));
            readers.push(ReaderEntry {
                role,
                key: "export.frames".to_string(),
                queue_depth: 1,
                policy: ReaderPolicy::parse("max-fps", Some(frames.max_fps)),
            });
        }
        for (i, user) in self.reader.iter().enumerate() {
            let role = Role::new(&user.name).unwrap_or_else(|_| Role::from(ProcessRole::Algo));
            readers.push(ReaderEntry::new(role, format!("reader[{i}]"), user.reader(), ReaderPolicy::Newest));
        }
        readers
    }
}

/// One configured reader before validation: its policy is the parse result.
pub(super) struct ReaderEntry {
    pub(super) role: Role,
    pub(super) key: String,
    pub(super) queue_depth: u32,
    pub(super) policy: Result<ReaderPolicy, String>,
}

impl ReaderEntry {
    fn new(role: Role, key: String, settings: ReaderSettings<'_>, default: ReaderPolicy) -> ReaderEntry {
        ReaderEntry { role, key, queue_depth: settings.queue_depth, policy: settings.policy(default) }
    }
}
