//! The settings every reader table has (`queue-depth`, `policy`, `max-fps`), defined once:
//! `reader_table!` writes them into a table's own struct, and [`ReaderSettings`] is how the
//! rest of the config reads them. serde's `flatten` would share them as one struct, but it
//! turns `deny_unknown_fields` off in effect (and changes every "unknown field" message), so
//! the fields are spliced into each table's own struct instead: its keys, their order in
//! messages and its errors stay its own.

use crate::policy::ReaderPolicy;

/// The reader settings of one table, as written in the config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReaderSettings<'a> {
    /// `queue-depth`: frames queued for this reader.
    pub queue_depth: u32,
    /// `policy`: `newest`, `every` or `max-fps`; `None` = the role's default.
    pub policy: Option<&'a str>,
    /// `max-fps`: frames per second taken with `policy = "max-fps"`.
    pub max_fps: Option<f64>,
}

impl ReaderSettings<'_> {
    /// The policy these settings choose, `default` when they name none (`max-fps` alone
    /// means `policy = "max-fps"`); the error says what is allowed.
    pub fn policy(&self, default: ReaderPolicy) -> Result<ReaderPolicy, String> {
        match self.policy {
            Some(name) => ReaderPolicy::parse(name, self.max_fps),
            None if self.max_fps.is_some() => ReaderPolicy::parse("max-fps", self.max_fps),
            None => Ok(default),
        }
    }
}

/// Declares a reader table's config struct (`Debug`, `Clone`, `Deserialize`, unknown keys
/// refused, kebab-case keys) with the reader settings spliced in where the field list says:
/// `..queue_depth("default fn")` puts `queue-depth` there (with that serde default),
/// `..policy` puts `policy` and `max-fps` there. It also gives the struct a `reader()` method
/// returning its [`ReaderSettings`].
macro_rules! reader_table {
    ($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $crate::config::reader_table::reader_table!(@fields [$(#[$meta])*] $name [] $($body)*);
    };
    (@fields $meta:tt $name:ident [$($done:tt)*] ..queue_depth($default:literal), $($rest:tt)*) => {
        $crate::config::reader_table::reader_table!(@fields $meta $name [$($done)*
            /// Frames queued for this reader (`queue-depth`); 1 = always the newest frame, older
            /// ones are skipped.
            #[serde(default = $default)]
            pub queue_depth: u32,
        ] $($rest)*);
    };
    (@fields $meta:tt $name:ident [$($done:tt)*] ..policy, $($rest:tt)*) => {
        $crate::config::reader_table::reader_table!(@fields $meta $name [$($done)*
            /// Reader policy: `newest`, `every` or `max-fps` (see [`crate::policy`]); unset, the
            /// role's default (`every` for the recorder, `newest` for the others).
            #[serde(default)]
            pub policy: Option<String>,
            /// Frames per second taken with `policy = "max-fps"`.
            #[serde(default)]
            pub max_fps: Option<f64>,
        ] $($rest)*);
    };
    (@fields $meta:tt $name:ident [$($done:tt)*] $(#[$fmeta:meta])* pub $field:ident : $ty:ty, $($rest:tt)*) => {
        $crate::config::reader_table::reader_table!(@fields $meta $name [$($done)* $(#[$fmeta])* pub $field: $ty,] $($rest)*);
    };
    (@fields [$($meta:tt)*] $name:ident [$($done:tt)*]) => {
        $($meta)*
        #[derive(Debug, Clone, serde::Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        pub struct $name {
            $($done)*
        }

        impl $name {
            /// Its reader settings (`queue-depth`, `policy`, `max-fps`).
            pub fn reader(&self) -> $crate::config::ReaderSettings<'_> {
                $crate::config::ReaderSettings {
                    queue_depth: self.queue_depth,
                    policy: self.policy.as_deref(),
                    max_fps: self.max_fps,
                }
            }
        }
    };
}

pub(crate) use reader_table;
