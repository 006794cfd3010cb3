//! `examples/NAME/expect.txt`: what an example's console must show, which
//! platforms it opts out of, and an optional run timeout.
//!
//! Format, one item per line (surrounding whitespace is ignored):
//!
//! ```text
//! # a comment (only whole lines; `#` elsewhere is part of the text)
//! guest: hello from the guest        <- a substring some console line must contain
//! skip: bochs-vmx <reason>           <- do not run on that platform in `test`
//! timeout: 120                       <- seconds before a run counts as hung
//! outcome: stopped                   <- the VMM must stop the guest (see below)
//! ```
//!
//! `outcome:` says how a passing run ends. `exited` (the default): the
//! guest asks to stop and the console shows `vmm: guest exited with status
//! 0`. `stopped`: the example shows an escape attempt whose documented
//! result is that the VMM stops the guest, so the run must end with the
//! VMM's `vmm: guest stopped: ...` diagnosis and its failure exit (QEMU
//! code 35; Bochs: the Shutdown port), never with a guest exit status.
//!
//! Blank lines are ignored. The expected substrings are matched against
//! single console lines, in any order.

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
}

/// How a passing run ends (`outcome:` in `expect.txt`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Outcome {
    /// The guest finished: `vmm: guest exited with status 0`.
    #[default]
    Exited,
    /// The VMM stopped the guest: `vmm: guest stopped: ...` and the VMM's
    /// failure exit.
    Stopped,
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
            } else if let Some(rest) = line.strip_prefix("outcome:") {
                out.outcome = match rest.trim() {
                    "exited" => Outcome::Exited,
                    "stopped" => Outcome::Stopped,
                    other => bail!(
                        "line {line_no}: `outcome:` wants `exited` or `stopped`, got `{other}`"
                    ),
                };
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
        Ok(out)
    }

    /// The reason `platform` is skipped, if it is.
    pub fn skip_reason(&self, platform: &str) -> Option<&str> {
        self.skips
            .iter()
            .find(|(p, _)| p == platform)
            .map(|(_, reason)| reason.as_str())
    }

    /// The expected substrings no console line contains.
    pub fn missing<'a>(&'a self, console: &[String]) -> Vec<&'a str> {
        self.lines
            .iter()
            .filter(|want| !console.iter().any(|line| line.contains(want.as_str())))
            .map(String::as_str)
            .collect()
    }
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
        assert_eq!(Expectations::parse("a\n").unwrap().outcome, Outcome::Exited);
        let e = Expectations::parse("outcome: stopped\nvmm: guest stopped: x\n").unwrap();
        assert_eq!(e.outcome, Outcome::Stopped);
        assert_eq!(e.lines, vec!["vmm: guest stopped: x"]);
        assert_eq!(
            Expectations::parse("outcome:  exited ").unwrap().outcome,
            Outcome::Exited
        );
        assert!(Expectations::parse("outcome: crashed").is_err());
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
