//! Shell completions (`ctl completions <shell>`) and man pages (`ctl man`), generated from the
//! clap definitions in [`crate::cli`], so they never drift from the real options.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::{Cli, CtlCommand, EXIT_CODES};
use crate::Outcome;

/// Runs `ctl completions` or `ctl man` (any other command: nothing to do here).
pub fn run(command: &CtlCommand, json: bool) -> anyhow::Result<Outcome> {
    match command {
        CtlCommand::Completions { shell } => completions(*shell, &mut std::io::stdout().lock())?,
        CtlCommand::Man { output: None } => man_page(&mut std::io::stdout().lock())?,
        CtlCommand::Man { output: Some(dir) } => {
            let written = man_pages(dir)?;
            if json {
                let files: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
                println!("{}", serde_json::json!({ "written": files }));
            } else {
                for path in &written {
                    println!("{}", path.display());
                }
            }
        }
        _ => {}
    }
    Ok(Outcome::Done)
}

/// Writes the completion script of `shell` for `ctl`: it registers ctl's dynamic completions
/// ([`crate::complete`]), so the shell asks this ctl for candidates, camera and role names from
/// the config in effect included.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> anyhow::Result<()> {
    crate::complete::registration(shell, &completer_path(), out).context("writing the completion script")
}

/// How the script runs ctl: as it was run (`ctl` from PATH), or its absolute path when it was
/// run by a path (`target/release/ctl`), so the script works from any folder.
fn completer_path() -> String {
    let Some(argv0) = std::env::args_os().next() else { return "ctl".to_string() };
    let path = PathBuf::from(argv0);
    if path.components().count() > 1 {
        if let Ok(absolute) = std::path::absolute(&path) {
            return absolute.display().to_string();
        }
    }
    path.display().to_string()
}

/// Writes the page `ctl.1` to `out`.
pub fn man_page(out: &mut dyn Write) -> anyhow::Result<()> {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    render(&command, &subcommand_names(&command), out)
}

/// Writes `ctl.1` and one page per command (`ctl-status.1`, ...) into `dir` (created if
/// missing); returns the files written.
pub fn man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let names = subcommand_names(&command);
    let mut written = Vec::new();
    let mut pages = vec![(command.clone(), names.clone())];
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push((sub.clone(), vec!["ctl".to_string()]));
    }
    for (page, see_also) in pages {
        let file_name = format!("{}.1", page.get_display_name().unwrap_or_else(|| page.get_name()));
        let path = dir.join(file_name);
        let mut text = Vec::new();
        render(&page, &see_also, &mut text)?;
        std::fs::write(&path, text).with_context(|| format!("writing `{}`", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn subcommand_names(command: &clap::Command) -> Vec<String> {
    command
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_display_name().unwrap_or_else(|| s.get_name()).to_string())
        .collect()
}

/// One page: clap_mangen's sections, then EXIT STATUS, ENVIRONMENT and SEE ALSO.
fn render(command: &clap::Command, see_also: &[String], out: &mut dyn Write) -> anyhow::Result<()> {
    // The help text's own "Exit codes" paragraph (after_help) becomes the EXIT STATUS section.
    let man = clap_mangen::Man::new(command.clone().after_help(None::<&str>));
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    if command.has_subcommands() {
        man.render_subcommands_section(out)?;
    }
    writeln!(out, ".SH \"EXIT STATUS\"")?;
    writeln!(out, "{}", roff_text(EXIT_CODES.trim_start_matches("Exit codes: ")))?;
    writeln!(out, ".SH ENVIRONMENT")?;
    writeln!(
        out,
        ".TP\n\\fBFRAMEBUS_LOG_FORMAT\\fR\n{}",
        roff_text("text or json, like --log-format; ctl up passes its own to every process it starts.")
    )?;
    writeln!(out, ".TP\n\\fBRUST_LOG\\fR\n{}", roff_text("log filter, e.g. debug or info,iceoryx2=debug."))?;
    writeln!(out, ".TP\n\\fBNO_COLOR\\fR\n{}", roff_text("no colours in text logs."))?;
    if !see_also.is_empty() {
        writeln!(out, ".SH \"SEE ALSO\"")?;
        let refs: Vec<String> = see_also.iter().map(|name| format!("\\fB{}\\fR(1)", roff_text(name))).collect();
        writeln!(out, "{}", refs.join(", "))?;
    }
    if command.get_version().is_some() {
        man.render_version_section(out)?;
    }
    Ok(())
}

/// Text as a roff line: backslashes escaped, and a leading `.` or `'` (a roff request) and
/// hyphens kept literal.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_man_page_names_every_command_and_the_exit_codes() {
        let mut out = Vec::new();
        man_page(&mut out).expect("renders");
        let page = String::from_utf8(out).expect("utf-8");
        for needle in [
            ".TH ctl 1",
            ".SH SYNOPSIS",
            ".SH \"EXIT STATUS\"",
            "\\fBctl\\-status\\fR(1)",
            "\\fBctl\\-systemd\\fR(1)",
            "\\-\\-log\\-format",
        ] {
            assert!(page.contains(needle), "missing `{needle}` in:\n{page}");
        }
    }

    #[test]
    fn bash_completions_call_ctl_back() {
        let mut out = Vec::new();
        completions(clap_complete::Shell::Bash, &mut out).expect("writes");
        let script = String::from_utf8(out).expect("utf-8");
        assert!(script.contains("-F _clap_complete_ctl ctl"), "{script}");
        assert!(script.contains("FRAMEBUS_COMPLETE=\"bash\""), "{script}");
    }
}
