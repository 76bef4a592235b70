//! The docs run as written: every command line of a framebus binary (`ctl`, `capture`, `algo`,
//! `preview`, `recorder`, `streamer`, `mediaserver`, `bridge`, `framebus-bench`) in a fenced code block of
//! README.md, ARCHITECTURE.md and docs/*.md parses with that binary's real command-line
//! definition (its clap struct, from its library), every `just <recipe>` names a recipe of the
//! justfile with a fitting number of arguments, and every repository path the docs name (in
//! backticks or as a link) exists.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Parser;

/// The repository root (this crate is `tests`).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A binary whose command lines the docs show.
struct Binary {
    /// Its file name (`target/release/<name>`).
    name: &'static str,
    /// Its package (`cargo run -p <package>`).
    package: &'static str,
    /// Whether the docs may call it by its bare name (on PATH: `just install-ctl` links ctl;
    /// `framebus-bench` cannot be mistaken for a word of prose); the others only by a path.
    bare: bool,
    /// Parses an argv (argv[0] included) with the binary's clap definition.
    parse: fn(&[String]) -> Result<(), clap::Error>,
}

fn parses<P: Parser>(argv: &[String]) -> Result<(), clap::Error> {
    P::try_parse_from(argv).map(drop)
}

/// Every framebus binary with a command line.
const BINARIES: &[Binary] = &[
    Binary { name: "ctl", package: "framebus-ctl", bare: true, parse: parses::<framebus_ctl::cli::Cli> },
    Binary { name: "capture", package: "framebus-capture", bare: false, parse: parses::<framebus_capture::cli::Args> },
    Binary { name: "algo", package: "framebus-algo", bare: false, parse: parses::<framebus_algo::cli::Args> },
    Binary { name: "preview", package: "framebus-preview", bare: false, parse: parses::<framebus_preview::cli::Args> },
    Binary {
        name: "recorder",
        package: "framebus-recorder",
        bare: false,
        parse: parses::<framebus_recorder::cli::Args>,
    },
    Binary {
        name: "streamer",
        package: "framebus-streamer",
        bare: false,
        parse: parses::<framebus_streamer::cli::Args>,
    },
    Binary {
        name: "mediaserver",
        package: "framebus-mediaserver",
        bare: false,
        parse: parses::<framebus_mediaserver::cli::Args>,
    },
    Binary { name: "bridge", package: "framebus-bridge", bare: false, parse: parses::<framebus_bridge::cli::Args> },
    Binary { name: "framebus-bench", package: "framebus-bench", bare: true, parse: parses::<framebus_bench::cli::Cli> },
];

/// The docs a newcomer reads: README.md, ARCHITECTURE.md and every docs/*.md.
fn doc_files() -> Vec<PathBuf> {
    let root = repo();
    let mut files = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("reading docs/")
        .map(|e| e.expect("reading docs/").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// A file's name relative to the repository, for messages.
fn shown(file: &Path) -> String {
    file.strip_prefix(repo()).unwrap_or(file).display().to_string()
}

/// One logical line of a fenced code block: its 1-based line number and text (lines ending in
/// `\` joined with the next).
struct CodeLine {
    line: usize,
    text: String,
}

/// The lines of fenced code blocks that may hold shell commands (not toml, rust, json, python).
fn shell_code_lines(text: &str) -> Vec<CodeLine> {
    let mut out = Vec::new();
    let mut in_block: Option<bool> = None; // Some(is_shell)
    let mut pending: Option<CodeLine> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            in_block = match in_block {
                None => {
                    let lang = info.trim().to_ascii_lowercase();
                    Some(!matches!(lang.as_str(), "toml" | "rust" | "json" | "python" | "c" | "ini" | "yaml"))
                }
                Some(_) => None,
            };
            continue;
        }
        if in_block != Some(true) {
            continue;
        }
        let (line, mut acc) = match pending.take() {
            Some(p) => (p.line, p.text),
            None => (i + 1, String::new()),
        };
        match raw.strip_suffix('\\') {
            Some(head) => {
                acc.push_str(head);
                acc.push(' ');
                pending = Some(CodeLine { line, text: acc });
            }
            None => {
                acc.push_str(raw);
                out.push(CodeLine { line, text: acc });
            }
        }
    }
    out
}

/// The simple commands of a shell line: split like a shell (comments dropped), cut at `&&`,
/// `||`, `|`, `;` and `&`, without redirections and leading `VAR=value` assignments.
fn simple_commands(line: &str) -> Result<Vec<Vec<String>>, String> {
    let words = shlex::split(line).ok_or_else(|| "unbalanced quotes".to_string())?;
    let mut commands = vec![Vec::new()];
    let mut skip_next = false;
    for word in words {
        if skip_next {
            skip_next = false;
            continue;
        }
        match word.as_str() {
            "&&" | "||" | "|" | ";" | "&" => commands.push(Vec::new()),
            ">" | ">>" | "<" | "2>" | "2>>" | "&>" => skip_next = true,
            w if is_redirection(w) => {}
            _ => {
                let current = commands.last_mut().expect("at least one command");
                let assignment = current.is_empty() && is_assignment(&word);
                if !assignment {
                    current.push(word);
                }
            }
        }
    }
    Ok(commands.into_iter().filter(|c| !c.is_empty()).collect())
}

/// `2>&1`, `>file`, `2>/dev/null`, `&>log`: an output redirection written as one word.
fn is_redirection(word: &str) -> bool {
    word.trim_start_matches(|c: char| c.is_ascii_digit() || c == '&').starts_with('>')
}

/// `NAME=value` before a command.
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    })
}

/// The binary a command runs and its arguments (argv[0] included): `ctl ...`,
/// `target/<profile>/<name> ...`, or `cargo run ... -p <package> -- ...` (`--bin <name>`).
fn binary_argv(command: &[String]) -> Option<(&'static Binary, Vec<String>)> {
    let first = command.first()?;
    for binary in BINARIES {
        let by_path = first.starts_with("target/") && first.rsplit('/').next() == Some(binary.name);
        if by_path || (binary.bare && first == binary.name) {
            return Some((binary, command.to_vec()));
        }
    }
    if first == "cargo" && command.get(1).is_some_and(|w| w == "run") {
        for binary in BINARIES {
            let names_it = command.windows(2).any(|w| {
                (matches!(w[0].as_str(), "-p" | "--package") && w[1] == binary.package)
                    || (w[0] == "--bin" && w[1] == binary.name)
            }) || command
                .iter()
                .any(|w| *w == format!("--package={}", binary.package) || *w == format!("--bin={}", binary.name));
            if names_it {
                let rest = command.iter().skip_while(|w| *w != "--").skip(1).cloned();
                return Some((binary, std::iter::once(binary.name.to_string()).chain(rest).collect()));
            }
        }
    }
    None
}

/// A justfile recipe: how many positional arguments it takes.
#[derive(Debug)]
struct Recipe {
    required: usize,
    optional: usize,
    variadic: bool,
}

/// The recipes of the repository's justfile, by name.
fn recipes() -> BTreeMap<String, Recipe> {
    let text = std::fs::read_to_string(repo().join("justfile")).expect("reading justfile");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t', '#', '[']) || line.is_empty() || line.contains(":=") {
            continue;
        }
        let Some((head, _body)) = line.split_once(':') else { continue };
        let mut words = head.split_whitespace();
        let Some(name) = words.next() else { continue };
        if name.starts_with('@') && name.len() == 1 {
            continue;
        }
        let name = name.trim_start_matches('@');
        let mut recipe = Recipe { required: 0, optional: 0, variadic: false };
        for param in words {
            if param.starts_with(['*', '+']) || param.starts_with("$*") || param.starts_with("$+") {
                recipe.variadic = true;
            } else if param.contains('=') {
                recipe.optional += 1;
            } else {
                recipe.required += 1;
            }
        }
        out.insert(name.to_string(), recipe);
    }
    out
}

/// Checks one `just` invocation against the justfile.
fn check_just(command: &[String], recipes: &BTreeMap<String, Recipe>) -> Result<(), String> {
    let args: Vec<&String> = command[1..].iter().filter(|w| !w.starts_with('-')).collect();
    let Some(name) = args.first() else { return Ok(()) }; // `just` alone runs the default recipe
    let recipe = recipes.get(name.as_str()).ok_or_else(|| {
        format!(
            "no recipe `{name}` in the justfile (recipes: {})",
            recipes.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let given = args.len() - 1;
    if given < recipe.required || (!recipe.variadic && given > recipe.required + recipe.optional) {
        return Err(format!(
            "recipe `{name}` takes {} to {} arguments, given {given}",
            recipe.required,
            if recipe.variadic { "any".to_string() } else { (recipe.required + recipe.optional).to_string() }
        ));
    }
    Ok(())
}

/// `--config FILE` or `--config=FILE` in an argv.
fn config_arg(argv: &[String]) -> Option<PathBuf> {
    let mut found = None;
    for (i, word) in argv.iter().enumerate() {
        if word == "--config" {
            found = argv.get(i + 1).map(PathBuf::from);
        } else if let Some(path) = word.strip_prefix("--config=") {
            found = Some(PathBuf::from(path));
        }
    }
    found
}

/// Checks one invocation of a binary with its own clap definition.
fn check_binary(binary: &Binary, argv: &[String]) -> Result<(), String> {
    if let Some(word) = argv.iter().find(|w| w.contains('<') || w.contains('>')) {
        return Err(format!("`{word}` looks like a placeholder: write a real example value"));
    }
    match (binary.parse)(argv) {
        Ok(()) => {
            // A relative config path in the docs must be a file of the repository.
            if let Some(config) = config_arg(argv).filter(|c| c.is_relative()) {
                if !repo().join(&config).is_file() {
                    return Err(format!("--config {}: no such file in the repository", config.display()));
                }
            }
            Ok(())
        }
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => Ok(()),
            _ => Err(e.render().to_string().trim_end().to_string()),
        },
    }
}

/// One line of a doc's code block: file, line, text, and the simple commands in it (or why
/// it does not split).
type DocLine = (String, usize, String, Result<Vec<Vec<String>>, String>);

/// Every command line in the docs' code blocks.
fn doc_commands() -> Vec<DocLine> {
    let mut out = Vec::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        for line in shell_code_lines(&text) {
            out.push((shown(&file), line.line, line.text.clone(), simple_commands(&line.text)));
        }
    }
    out
}

/// How many commands of each kind were checked.
#[derive(Debug, Default)]
struct Counts {
    ctl: usize,
    /// The other binaries', by name.
    others: BTreeMap<&'static str, usize>,
    just: usize,
}

/// Runs the checks over every doc command; returns the failures and how many commands were
/// checked.
fn failures(extra: &[(String, usize, String)]) -> (String, Counts) {
    let recipes = recipes();
    let mut report = String::new();
    let mut counts = Counts::default();
    let mut lines = doc_commands();
    lines.extend(extra.iter().map(|(f, l, t)| (f.clone(), *l, t.clone(), simple_commands(t))));
    for (file, line, text, commands) in lines {
        let commands = match commands {
            Ok(c) => c,
            Err(e) => {
                if text.contains("ctl") || text.contains("just") || text.contains("target/") {
                    let _ = writeln!(report, "{file}:{line}: `{}`: {e}", text.trim());
                }
                continue;
            }
        };
        for command in commands {
            let result = if let Some((binary, argv)) = binary_argv(&command) {
                if binary.name == "ctl" {
                    counts.ctl += 1;
                } else {
                    *counts.others.entry(binary.name).or_default() += 1;
                }
                check_binary(binary, &argv)
            } else if command[0] == "just" {
                counts.just += 1;
                check_just(&command, &recipes)
            } else {
                continue;
            };
            if let Err(e) = result {
                let _ = writeln!(report, "{file}:{line}: `{}`:\n{e}\n", text.trim());
            }
        }
    }
    (report, counts)
}

#[test]
fn every_documented_command_parses() {
    let (report, counts) = failures(&[]);
    assert!(report.is_empty(), "commands in the docs that do not run as written:\n{report}");
    // The docs do show commands: an extraction that finds none is broken, not clean.
    assert!(counts.ctl >= 20, "only {} ctl commands found in the docs' code blocks", counts.ctl);
    assert!(counts.just >= 3, "only {} just commands found in the docs' code blocks", counts.just);
    for name in ["capture", "preview", "recorder", "framebus-bench"] {
        assert!(counts.others.contains_key(name), "no `{name}` command found in the docs: {counts:?}");
    }
}

#[test]
fn a_wrong_command_is_reported_with_file_line_and_clap_error() {
    let extra = [
        ("EXTRA.md".to_string(), 7, "ctl stauts cam0            # misspelt".to_string()),
        ("EXTRA.md".to_string(), 8, "ctl record maybe cam0".to_string()),
        ("EXTRA.md".to_string(), 9, "ctl events <camera>".to_string()),
        ("EXTRA.md".to_string(), 10, "bash scripts/bootstrap.sh && just upp".to_string()),
        ("EXTRA.md".to_string(), 11, "just fmt extra-argument".to_string()),
        ("EXTRA.md".to_string(), 12, "ctl status --config configs/missing.toml".to_string()),
        ("EXTRA.md".to_string(), 13, "cargo run -p framebus-ctl -- stop".to_string()),
        ("EXTRA.md".to_string(), 14, "target/release/preview --config configs/default.toml --port 8080".to_string()),
        ("EXTRA.md".to_string(), 15, "target/debug/recorder --saving maybe".to_string()),
        ("EXTRA.md".to_string(), 16, "framebus-bench everything".to_string()),
        ("EXTRA.md".to_string(), 17, "cargo run --release -p framebus-algo -- --frames 10".to_string()),
        ("EXTRA.md".to_string(), 18, "target/release/capture --config configs/none.toml".to_string()),
        (
            "EXTRA.md".to_string(),
            19,
            "target/release/framebus-bench --help && target/release/algo --max-frames 5".to_string(),
        ),
    ];
    let (report, _) = failures(&extra);
    for (needle, what) in [
        ("EXTRA.md:7:", "unknown subcommand"),
        ("unrecognized subcommand 'stauts'", "clap's message"),
        ("EXTRA.md:8:", "bad value"),
        ("invalid value 'maybe'", "clap's message"),
        ("EXTRA.md:9:", "placeholder"),
        ("EXTRA.md:10:", "unknown recipe"),
        ("no recipe `upp`", "recipe message"),
        ("EXTRA.md:11:", "too many recipe arguments"),
        ("EXTRA.md:12:", "missing config"),
        ("EXTRA.md:13:", "cargo run form"),
        ("EXTRA.md:14:", "preview flag that does not exist"),
        ("unexpected argument '--port'", "clap's message"),
        ("EXTRA.md:15:", "recorder value"),
        ("EXTRA.md:16:", "bench command"),
        ("EXTRA.md:17:", "algo through cargo run"),
        ("EXTRA.md:18:", "capture's missing config"),
    ] {
        assert!(report.contains(needle), "{what}: `{needle}` missing from the report:\n{report}");
    }
    assert!(!report.contains("EXTRA.md:19:"), "right commands are not reported:\n{report}");
}

#[test]
fn shell_lines_split_into_commands() {
    let split = |s: &str| simple_commands(s).expect("splits");
    assert_eq!(split("ctl status cam0 --json   # one camera"), vec![vec!["ctl", "status", "cam0", "--json"]]);
    assert_eq!(
        split("FRAMEBUS_LOG_FORMAT=json ctl up 2>&1 | jq -c . > out.json"),
        vec![vec!["ctl", "up"], vec!["jq", "-c", "."]]
    );
    assert_eq!(
        split("ctl control cam0 set auto_exposure=\"Manual Mode\" && just status"),
        vec![vec!["ctl", "control", "cam0", "set", "auto_exposure=Manual Mode"], vec!["just", "status"]]
    );
    let lines = shell_code_lines("text\n```sh\nctl list \\\n  --json\n```\n```toml\nctl = 1\n```\n");
    assert_eq!(lines.len(), 1);
    assert_eq!(
        (lines[0].line, lines[0].text.split_whitespace().collect::<Vec<_>>()),
        (3, vec!["ctl", "list", "--json"])
    );
}

/// Top-level folders and files of the repository a doc path may start with.
const REPO_ROOTS: &[&str] =
    &["crates/", "bins/", "tests/", "python/", "configs/", "scripts/", "examples/", "docs/", "fuzz/", ".ci/"];
const REPO_FILES: &[&str] = &["README.md", "ARCHITECTURE.md", "Cargo.toml", "justfile", "rustfmt.toml"];

/// Expands `a/{b,c}.rs` into `a/b.rs` and `a/c.rs` (one brace group).
fn expand_braces(path: &str) -> Vec<String> {
    match (path.find('{'), path.find('}')) {
        (Some(open), Some(close)) if open < close => path[open + 1..close]
            .split(',')
            .map(|alt| format!("{}{}{}", &path[..open], alt, &path[close + 1..]))
            .collect(),
        _ => vec![path.to_string()],
    }
}

/// Repository paths named in a doc: backticked spans that start at a top-level folder (or are
/// a top-level file), and relative link targets. Returns (line, path as written, resolved).
fn named_paths(file: &Path, text: &str) -> Vec<(usize, String, PathBuf)> {
    let root = repo();
    let dir = file.parent().expect("a doc is in a folder").to_path_buf();
    let mut out = Vec::new();
    let mut in_block = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        // Backticked spans: the odd pieces between backticks.
        for (n, span) in line.split('`').enumerate() {
            if n % 2 == 0 {
                continue;
            }
            let path = span.trim_end_matches(['/', ':', ',']);
            let names_repo = REPO_ROOTS.iter().any(|r| path.starts_with(r)) || REPO_FILES.contains(&path);
            let plain = !path.is_empty()
                && path.chars().all(|c| c.is_ascii_alphanumeric() || "._/-{},".contains(c))
                && !path.contains("..");
            if names_repo && plain {
                for p in expand_braces(path) {
                    out.push((i + 1, span.to_string(), root.join(p)));
                }
            }
        }
        // Links: `](target)` and `](target#anchor)`.
        for piece in line.split("](").skip(1) {
            let Some(link) = piece.split(')').next() else { continue };
            let (target, anchor) = link.split_once('#').unwrap_or((link, ""));
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let resolved = if target.is_empty() { file.to_path_buf() } else { dir.join(target) };
            if !target.is_empty() {
                out.push((i + 1, target.to_string(), resolved.clone()));
            }
            if !anchor.is_empty() && resolved.is_file() && !anchors(&resolved).contains(&anchor.to_string()) {
                // Reported as a path that does not exist: `file#anchor`.
                out.push((i + 1, link.to_string(), root.join("missing anchor").join(link)));
            }
        }
    }
    out
}

/// The anchors GitHub gives the headings of a Markdown file (lowercase, punctuation dropped,
/// spaces to `-`).
fn anchors(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut in_block = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
        }
        if in_block || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        out.push(slug);
    }
    out
}

#[test]
fn every_path_the_docs_name_exists() {
    let mut report = String::new();
    let mut checked = 0;
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        for (line, written, resolved) in named_paths(&file, &text) {
            checked += 1;
            if !resolved.exists() {
                let _ = writeln!(report, "{}:{line}: `{written}` does not exist", shown(&file));
            }
        }
    }
    assert!(report.is_empty(), "paths in the docs that do not exist:\n{report}");
    assert!(checked >= 30, "only {checked} repository paths found in the docs");
}

#[test]
fn a_missing_path_is_reported() {
    let file = repo().join("docs/x.md");
    let found = named_paths(
        &file,
        "see `bins/capture/src/gone.rs` and [the map](../ARCHITECTURE.md#code-map), `crates/{common,gone}`\n```\n`bins/none`\n```\n[x](../ARCHITECTURE.md#no-such-heading)\n",
    );
    let missing: Vec<String> =
        found.iter().filter(|(_, _, p)| !p.exists()).map(|(l, w, _)| format!("{l}:{w}")).collect();
    assert_eq!(
        missing,
        vec!["1:bins/capture/src/gone.rs", "1:crates/{common,gone}", "5:../ARCHITECTURE.md#no-such-heading"]
    );
    assert_eq!(found.len(), 6, "{found:?}");
}
