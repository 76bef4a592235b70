//! The one check that the GStreamer elements a process needs are installed (the streamer and
//! the media server call it after `gst::init`), naming the Debian package of each missing one.

use gstreamer as gst;

/// Elements that are not installed, as `name (package)`, in the order given.
pub fn missing_elements(needed: &[(&str, &str)]) -> Vec<String> {
    needed
        .iter()
        .filter(|(name, _)| gst::ElementFactory::find(name).is_none())
        .map(|(name, package)| format!("{name} ({package})"))
        .collect()
}

/// Some elements a process needs are not installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingElements(pub Vec<String>);

impl std::fmt::Display for MissingElements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GStreamer elements missing: {}; run scripts/bootstrap.sh (or apt-get install the packages named)",
            self.0.join(", ")
        )
    }
}

impl std::error::Error for MissingElements {}

/// Fails naming the missing elements and their packages (`scripts/bootstrap.sh` installs them).
/// GStreamer must be initialised first.
pub fn check_elements(needed: &[(&str, &str)]) -> Result<(), MissingElements> {
    let missing = missing_elements(needed);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(MissingElements(missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An element that no plugin provides is named with its package; a core one is found.
    #[test]
    fn a_missing_element_is_named_with_its_package() {
        gst::init().expect("gst init");
        assert_eq!(check_elements(&[("queue", "gstreamer1.0")]), Ok(()));
        let e = check_elements(&[("queue", "core"), ("no-such-element-x", "pkg-x")]).expect_err("missing");
        assert_eq!(e.0, ["no-such-element-x (pkg-x)"]);
        assert!(e.to_string().starts_with("GStreamer elements missing: no-such-element-x (pkg-x); run"), "{e}");
    }
}
