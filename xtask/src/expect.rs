//! `examples/NAME/expect.txt`: what an example's console must show, which
//! platforms it opts out of, and an optional run timeout.
//!
//! Format, one item per line (surrounding whitespace is ignored):
//!
//! ```text
//! # a comment (only whole lines; `#` elsewhere is part of the text)
//! guest: hello from the guest        <- a substring some console line must contain
//! guest: loaded at {addr}            <- ... binding `addr` to the word at {addr}
//! skip: bochs-vmx <reason>           <- do not run on that platform in `test`
//! timeout: 120                       <- seconds before a run counts as hung
//! outcome: stopped                   <- the VMM must stop the guest (see below)
//! stopped: guest touched ... at RIP {addr}  <- text the VMM's stop reason must contain
//! outcome: exited 3                  <- the guest must exit with status 3
//! forgeries: 3                       <- the guest prints 3 forged verdict lines
//! cpus: qemu-svm=4 bochs-vmx=2        <- `test` also runs it on that many CPUs
//! ```
//!
//! `cpus:` (for a Linux program's `expect.txt`) adds a row to `cargo xtask
//! test`: the same run on a machine of N CPUs, per platform; a platform not
//! named gets no such run.
//!
//! `outcome:` says how a passing run ends, judged by the VMM's one verdict
//! line that carries the run's secret (see `crate::verdict`). `exited` (the
//! default) is `exited 0`: the guest asks to stop with status 0, the VMM
//! prints `vmm: guest exited with status 0 [verdict SECRET]`. `exited N`
//! wants status N instead (and the VMM's failure exit when N is not 0).
//! `stopped`: the example shows an escape attempt whose documented result
//! is that the VMM stops the guest, so the run must end with the VMM's
//! `vmm: guest stopped: REASON [verdict SECRET]` and its failure exit (QEMU
//! code 35; Bochs: the Shutdown port, after the VMM logged `fail`), never
//! with a guest exit status; each `stopped:` line is text REASON must
//! contain, ending at a word boundary.
//!
//! `forgeries: N` is for an example whose guest prints lines that claim a
//! verdict (`vmm: guest exited ...`, `vmm: guest stopped: ...`,
//! `[verdict ...]`) without the run's secret: exactly N such lines must be
//! found, and they do not fail the run. Without it, any such line fails the
//! run.
//!
//! A `{name}` (letters, digits, `_`) in an expected line matches one word
//! (a run of letters, digits and `_`, such as `0x2010a0`) and binds `name`
//! to it; `stopped:`
//! lines may use the bindings, so that the VMM's report can be compared
//! with what the guest printed. Blank lines are ignored. The expected
//! substrings are matched against single console lines, in any order.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::platform::Machine;

/// The parsed contents of an `expect.txt` (empty when the file is absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expectations {
    /// Substrings that must each appear in some console line.
    pub lines: Vec<String>,
    /// Platforms the example opts out of, with the reason.
    pub skips: Vec<(String, String)>,
    /// Per-example run timeout.
    pub timeout: Option<Duration>,
    /// How a passing run ends.
    pub outcome: Outcome,
    /// `stopped:` texts the VMM's stop reason must contain.
    pub stopped: Vec<String>,
    /// `forgeries: N`: the number of forged verdict lines the guest prints.
    pub forgeries: Option<usize>,
    /// `cpus: PLATFORM=N ...`: the CPU count of an extra run per platform.
    pub cpus: Vec<(String, u8)>,
}

impl Expectations {
    /// The CPU count `cpus:` names for `platform`, if any.
    pub fn cpus_for(&self, platform: &str) -> Option<u8> {
        self.cpus
            .iter()
            .find(|(p, _)| p == platform)
            .map(|(_, n)| *n)
    }
}

/// How a passing run ends (`outcome:` in `expect.txt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The guest finished with this status: `vmm: guest exited with status
    /// N`.
    Exited(u32),
    /// The VMM stopped the guest: `vmm: guest stopped: ...` and the VMM's
    /// failure exit.
    Stopped,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome::Exited(0)
    }
}

impl Outcome {
    /// Whether the VMM reports success (the emulator's success exit).
    pub fn is_success(self) -> bool {
        self == Outcome::Exited(0)
    }
}

impl Expectations {
    /// Reads `path`; a missing file means no expectations.
    pub fn load(path: &Path) -> Result<Expectations> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                Expectations::parse(&text).with_context(|| format!("in {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Expectations::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Parses the text of an `expect.txt`.
    pub fn parse(text: &str) -> Result<Expectations> {
        let mut out = Expectations::default();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("skip:") {
                let rest = rest.trim();
                let (platform, reason) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                if Machine::from_name(platform).is_none() {
                    bail!(
                        "line {line_no}: `skip:` names unknown platform `{platform}` \
                         (platforms: {})",
                        Machine::matrix_names()
                    );
                }
                let reason = reason.trim();
                let reason = if reason.is_empty() {
                    "no reason given".to_owned()
                } else {
                    reason.to_owned()
                };
                out.skips.push((platform.to_owned(), reason));
            } else if let Some(rest) = line.strip_prefix("cpus:") {
                for word in rest.split_whitespace() {
                    let (platform, n) = word.split_once('=').with_context(|| {
                        format!("line {line_no}: `cpus:` wants PLATFORM=N words, got `{word}`")
                    })?;
                    if Machine::from_name(platform).is_none() {
                        bail!("line {line_no}: `cpus:` names unknown platform `{platform}`");
                    }
                    let n = crate::cli::parse_cpus(n)
                        .with_context(|| format!("line {line_no}: `cpus:`"))?;
                    out.cpus.push((platform.to_owned(), n));
                }
            } else if let Some(rest) = line.strip_prefix("outcome:") {
                let words: Vec<&str> = rest.split_whitespace().collect();
                out.outcome = match words.as_slice() {
                    ["exited"] => Outcome::Exited(0),
                    ["exited", n] => Outcome::Exited(n.parse().with_context(|| {
                        format!("line {line_no}: `outcome: exited N` wants a u32 status, got `{n}`")
                    })?),
                    ["stopped"] => Outcome::Stopped,
                    _ => bail!(
                        "line {line_no}: `outcome:` wants `exited`, `exited N` or `stopped`, got `{}`",
                        rest.trim()
                    ),
                };
            } else if let Some(rest) = line.strip_prefix("stopped:") {
                let text = rest.trim();
                if text.is_empty() {
                    bail!("line {line_no}: `stopped:` wants the text of the VMM's stop reason");
                }
                out.stopped.push(text.to_owned());
            } else if let Some(rest) = line.strip_prefix("forgeries:") {
                out.forgeries = Some(rest.trim().parse().with_context(|| {
                    format!(
                        "line {line_no}: `forgeries:` wants a count, got `{}`",
                        rest.trim()
                    )
                })?);
            } else if let Some(rest) = line.strip_prefix("timeout:") {
                let secs: u64 = rest.trim().parse().with_context(|| {
                    format!(
                        "line {line_no}: `timeout:` wants whole seconds, got `{}`",
                        rest.trim()
                    )
                })?;
                if secs == 0 {
                    bail!("line {line_no}: `timeout: 0` would fail every run");
                }
                out.timeout = Some(Duration::from_secs(secs));
            } else {
                out.lines.push(line.to_owned());
            }
        }
        if !out.stopped.is_empty() && out.outcome != Outcome::Stopped {
            bail!("`stopped:` lines need `outcome: stopped`");
        }
        Ok(out)
    }

    /// The reason `platform` is skipped, if it is.
    pub fn skip_reason(&self, platform: &str) -> Option<&str> {
        self.skips
            .iter()
            .find(|(p, _)| p == platform)
            .map(|(_, reason)| reason.as_str())
    }

    /// The expected lines no console line matches.
    pub fn missing<'a>(&'a self, console: &[String]) -> Vec<&'a str> {
        self.lines
            .iter()
            .filter(|want| !console.iter().any(|line| match_line(want, line).is_some()))
            .map(String::as_str)
            .collect()
    }

    /// The `{name}` bindings of the expected lines: for each line with
    /// placeholders, from the first console line it matches.
    pub fn bindings(&self, console: &[String]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for want in self.lines.iter().filter(|w| !placeholders(w).is_empty()) {
            if let Some(found) = console.iter().find_map(|line| match_line(want, line)) {
                for (k, v) in found {
                    if !out.iter().any(|(have, _)| *have == k) {
                        out.push((k, v));
                    }
                }
            }
        }
        out
    }
}

/// The `{name}` placeholders of an expected line, in order.
pub fn placeholders(pattern: &str) -> Vec<&str> {
    split_pattern(pattern)
        .into_iter()
        .filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Text(_) => None,
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part<'a> {
    Text(&'a str),
    Var(&'a str),
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `a {x} b` as text and placeholders; braces around anything that is not
/// a name stay text.
fn split_pattern(pattern: &str) -> Vec<Part<'_>> {
    let mut parts = Vec::new();
    let rest = pattern;
    let mut text_start = 0usize;
    let mut at = 0usize;
    while let Some(open) = rest[at..].find('{').map(|i| at + i) {
        match rest[open + 1..].find('}').map(|i| open + 1 + i) {
            Some(close) if is_name(&rest[open + 1..close]) => {
                if open > text_start {
                    parts.push(Part::Text(&rest[text_start..open]));
                }
                parts.push(Part::Var(&rest[open + 1..close]));
                text_start = close + 1;
                at = close + 1;
            }
            _ => at = open + 1,
        }
        if at >= rest.len() {
            break;
        }
    }
    if text_start < rest.len() {
        parts.push(Part::Text(&rest[text_start..]));
    }
    parts
}

/// Whether a character belongs to a placeholder's word.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `line` contains `pattern`; with placeholders, the bindings of
/// the first match (each placeholder takes the shortest non-empty word
/// that lets the rest match, the last one the whole word).
pub fn match_line(pattern: &str, line: &str) -> Option<Vec<(String, String)>> {
    let parts = split_pattern(pattern);
    if parts.iter().all(|p| matches!(p, Part::Text(_))) {
        return line.contains(pattern).then(Vec::new);
    }
    // A match starts where its first text does (or anywhere).
    let starts: Vec<usize> = match parts.first() {
        Some(Part::Text(t)) => line.match_indices(t).map(|(i, _)| i).collect(),
        _ => (0..=line.len())
            .filter(|&i| line.is_char_boundary(i))
            .collect(),
    };
    starts
        .into_iter()
        .find_map(|start| match_at(&parts, &line[start..]))
}

/// `parts` matched at the very start of `s`.
fn match_at(parts: &[Part<'_>], s: &str) -> Option<Vec<(String, String)>> {
    let Some((first, rest)) = parts.split_first() else {
        return Some(Vec::new());
    };
    match *first {
        Part::Text(t) => match_at(rest, s.strip_prefix(t)?),
        Part::Var(name) => {
            let word_end = s.find(|c| !is_word_char(c)).unwrap_or(s.len());
            let ends = (1..=word_end).filter(|&e| s.is_char_boundary(e));
            let candidates: Vec<usize> = if rest.is_empty() {
                vec![word_end]
            } else {
                ends.collect()
            };
            candidates.into_iter().filter(|&e| e > 0).find_map(|e| {
                let mut found = match_at(rest, &s[e..])?;
                found.insert(0, (name.to_owned(), s[..e].to_owned()));
                Some(found)
            })
        }
    }
}

/// `pattern` with its placeholders replaced by `bindings`, or the names
/// that have none.
pub fn substitute(pattern: &str, bindings: &[(String, String)]) -> Result<String, Vec<String>> {
    let mut out = String::new();
    let mut unbound = Vec::new();
    for part in split_pattern(pattern) {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Var(v) => match bindings.iter().find(|(k, _)| k == v) {
                Some((_, value)) => out.push_str(value),
                None => unbound.push(v.to_owned()),
            },
        }
    }
    if unbound.is_empty() {
        Ok(out)
    } else {
        Err(unbound)
    }
}

/// Whether `hay` contains `needle` ending at a word boundary (the end, or
/// a character that is not a letter, digit or `_`): `at RIP 0x12` is not
/// in `at RIP 0x123`.
pub fn contains_word_end(hay: &str, needle: &str) -> bool {
    hay.match_indices(needle).any(|(i, m)| {
        hay[i + m.len()..]
            .chars()
            .next()
            .is_none_or(|c| !is_word_char(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_comments_skips_and_timeout() {
        let e = Expectations::parse(
            "# header\n\n  guest: hello  \nskip: bochs-vmx EPT not done yet\r\n\
             value # 3\ntimeout: 90\nskip: qemu-svm\n",
        )
        .unwrap();
        assert_eq!(e.lines, vec!["guest: hello", "value # 3"]);
        assert_eq!(e.skip_reason("bochs-vmx"), Some("EPT not done yet"));
        assert_eq!(e.skip_reason("qemu-svm"), Some("no reason given"));
        assert_eq!(e.skip_reason("bochs-svm"), None);
        assert_eq!(e.timeout, Some(Duration::from_secs(90)));
    }

    #[test]
    fn rejects_unknown_platforms_and_bad_timeouts() {
        assert!(Expectations::parse("skip: bochs-xyz why").is_err());
        assert!(Expectations::parse("timeout: soon").is_err());
        assert!(Expectations::parse("timeout: 0").is_err());
    }

    #[test]
    fn outcome_defaults_to_exited() {
        assert_eq!(
            Expectations::parse("a\n").unwrap().outcome,
            Outcome::Exited(0)
        );
        let e = Expectations::parse("outcome: stopped\nstopped: guest shutdown\nx\n").unwrap();
        assert_eq!(e.outcome, Outcome::Stopped);
        assert_eq!(e.stopped, vec!["guest shutdown"]);
        assert_eq!(e.lines, vec!["x"]);
        assert_eq!(
            Expectations::parse("outcome:  exited ").unwrap().outcome,
            Outcome::Exited(0)
        );
        let e = Expectations::parse("outcome: exited 3\nforgeries: 2\n").unwrap();
        assert_eq!((e.outcome, e.forgeries), (Outcome::Exited(3), Some(2)));
        assert!(!e.outcome.is_success());
        assert!(Expectations::parse("outcome: crashed").is_err());
        assert!(Expectations::parse("outcome: exited -1").is_err());
        assert!(Expectations::parse("forgeries: many").is_err());
        assert!(
            Expectations::parse("stopped: x").is_err(),
            "needs outcome: stopped"
        );
        assert!(Expectations::parse("outcome: stopped\nstopped:").is_err());
    }

    #[test]
    fn placeholders_bind_words() {
        let p = "load at RIP {rip}";
        assert_eq!(placeholders(p), vec!["rip"]);
        assert_eq!(
            match_line(p, "g: load at RIP 0x2010a0 now"),
            Some(vec![("rip".to_owned(), "0x2010a0".to_owned())])
        );
        assert_eq!(
            match_line(p, "g: load at RIP "),
            None,
            "a word is not empty"
        );
        assert_eq!(
            match_line(p, "g: load at RIP 0x12^M^@vmm: x"),
            Some(vec![("rip".to_owned(), "0x12".to_owned())]),
            "a word ends at the first character that is not a letter, digit or _"
        );
        assert_eq!(
            match_line("a={x}, b={y}!", "a=1, b=22!"),
            Some(vec![("x".into(), "1".into()), ("y".into(), "22".into())])
        );
        assert_eq!(match_line("{not a name}", "{not a name}"), Some(vec![]));
        let e = Expectations::parse("g: load at RIP {rip}\nplain\n").unwrap();
        let console = vec!["plain".to_owned(), "g: load at RIP 0x10".to_owned()];
        assert!(e.missing(&console).is_empty());
        assert_eq!(
            e.bindings(&console),
            vec![("rip".to_owned(), "0x10".to_owned())]
        );
        assert_eq!(e.missing(&console[..1]), vec!["g: load at RIP {rip}"]);
        let b = e.bindings(&console);
        assert_eq!(substitute("at RIP {rip}", &b), Ok("at RIP 0x10".to_owned()));
        assert_eq!(substitute("{rip} {sp}", &b), Err(vec!["sp".to_owned()]));
    }

    #[test]
    fn word_end_containment() {
        assert!(contains_word_end("at RIP 0x12 (x)", "at RIP 0x12"));
        assert!(contains_word_end("at RIP 0x12", "at RIP 0x12"));
        assert!(!contains_word_end("at RIP 0x123", "at RIP 0x12"));
        assert!(contains_word_end(
            "at RIP 0x123, at RIP 0x12",
            "at RIP 0x12"
        ));
    }

    #[test]
    fn missing_lines() {
        let e = Expectations::parse("a b\nc\n").unwrap();
        let console = vec!["xx a b yy".to_owned(), "zz".to_owned()];
        assert_eq!(e.missing(&console), vec!["c"]);
    }

    #[test]
    fn absent_file_is_empty() {
        let e = Expectations::load(Path::new("/nonexistent/expect.txt")).unwrap();
        assert_eq!(e, Expectations::default());
    }
}
