//! Deciding whether a run succeeded, and explaining why not.
//!
//! The guest shares the console (COM1) with the VMM, so it can print any
//! line the VMM prints. The verdict therefore rests on what only the VMM
//! can produce: each run gets a fresh random secret ([`new_secret`]) on
//! the VMM's command line (QEMU `-append`, GRUB `multiboot2 /boot/vmm
//! verdict=SECRET`), which the guest can never read, and the VMM ends its
//! one verdict line with it: `vmm: guest exited with status N [verdict
//! SECRET]` or `vmm: guest stopped: REASON [verdict SECRET]`.
//!
//! A run passes only if all of these hold:
//!
//! - the emulator exited by itself (no timeout, no signal);
//! - exactly one console line ends with the run's ` [verdict SECRET]`, and
//!   it says what `expect.txt`'s `outcome:` wants: by default `vmm: guest
//!   exited with status 0`; `exited N`: status N; `stopped`: `vmm: guest
//!   stopped: REASON` with REASON containing every `stopped:` text;
//! - no other line claims a verdict (contains `vmm: guest exited with
//!   status `, `vmm: guest stopped: ` or `[verdict `): such a line can
//!   only be forged by the guest. An example whose guest forges on purpose
//!   (`forgeries: N`) must show exactly N of them instead;
//! - no console line contains `vmm: PANIC` or `vmm: guest stopped:
//!   unhandled exit`;
//! - the emulator stopped on the VMM's request. QEMU: exit code 33 (the
//!   VMM wrote 0x10 to isa-debug-exit) when the outcome is success (status
//!   0), else 35 (0x11). Bochs: exit code 1, the log shows the
//!   Shutdown-port request (port 0x8900), and before it the VMM's line on
//!   the BIOS info port, `vmm: verdict pass SECRET` or `vmm: verdict fail
//!   SECRET` as the outcome wants (the guest can reach neither port);
//! - every line of the example's `expect.txt` appears in the console.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;

use crate::expect::{contains_word_end, substitute, Expectations, Outcome};
use crate::platform::Emulator;
use crate::runner::Exit;

/// The line the VMM prints when the guest is done.
pub const EXIT_MARKER: &str = "vmm: guest exited with status ";
/// The line the VMM prints when it stops the guest (escape attempts).
pub const STOP_MARKER: &str = "vmm: guest stopped: ";
/// What starts the VMM's tag at the end of its verdict line.
pub const TAG_MARKER: &str = "[verdict ";
/// Printed by the VMM's panic handler.
pub const PANIC_MARKER: &str = "vmm: PANIC";
/// The start of the VMM's line for an exit it has no handler for
/// (`vmm: guest stopped: unhandled exit NAME (raw code ...) at RIP ...`).
pub const UNHANDLED_MARKER: &str = "vmm: guest stopped: unhandled exit";
/// QEMU's exit code when the VMM writes 0x10 (success) to isa-debug-exit.
pub const QEMU_SUCCESS: i32 = 33;
/// QEMU's exit code when the VMM writes 0x11 (failure) to isa-debug-exit.
pub const QEMU_FAILURE: i32 = 35;
/// What Bochs logs when something writes "Shutdown" to port 0x8900.
pub const BOCHS_SHUTDOWN: &str = "Shutdown port: shutdown requested";
/// What the VMM writes to the Bochs BIOS info port (0x402) before the
/// Shutdown port, followed by `pass SECRET` or `fail SECRET`.
pub const BOCHS_VERDICT: &str = "vmm: verdict ";

/// A fresh secret for one run: 16 hex digits from `/dev/urandom` (or,
/// without it, from the standard library's randomly seeded hasher).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 8];
    let from_urandom = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    let value = if from_urandom {
        u64::from_le_bytes(bytes)
    } else {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        h.finish()
    };
    format!("{value:016x}")
}

/// The word on the VMM's command line that hands it the secret.
pub fn cmdline_word(secret: &str) -> String {
    format!("verdict={secret}")
}

/// Everything the verdict is based on.
pub struct Evidence<'a> {
    /// Which emulator ran.
    pub emulator: Emulator,
    /// The console lines.
    pub console: &'a [String],
    /// How the emulator ended.
    pub exit: Exit,
    /// The timeout that applied, for the message.
    pub timeout_secs: u64,
    /// The example's expectations.
    pub expected: &'a Expectations,
    /// The Bochs log text (Bochs only; `None` if unreadable).
    pub bochs_log: Option<&'a str>,
    /// The run's secret, as given to the VMM.
    pub secret: &'a str,
}

/// The outcome of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The run succeeded.
    Pass,
    /// The run failed, for these reasons (most important first).
    Fail(Vec<String>),
}

/// What the VMM's verdict line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reported {
    /// `vmm: guest exited with status N`: `Err(text)` if N does not parse.
    Exited(Result<i64, String>),
    /// `vmm: guest stopped: REASON`.
    Stopped(String),
    /// The tag without either (only a broken VMM would print it).
    Nothing(String),
}

/// The console's verdict lines, sorted: those that end with the run's tag,
/// and every other line that claims a verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    /// What the lines with the run's tag say, in order.
    pub authentic: Vec<Reported>,
    /// The other verdict-like lines, trimmed.
    pub forged: Vec<String>,
}

/// Whether a console line claims to be a verdict.
fn claims_verdict(line: &str) -> bool {
    line.contains(EXIT_MARKER) || line.contains(STOP_MARKER) || line.contains(TAG_MARKER)
}

/// What an authentic line (its tag removed) says: the last marker counts,
/// so that guest text left on the line before the VMM's cannot change it.
fn parse_reported(text: &str) -> Reported {
    let exit = text.rfind(EXIT_MARKER);
    let stop = text.rfind(STOP_MARKER);
    match (exit, stop) {
        (Some(e), s) if s.is_none_or(|s| e > s) => {
            let rest = text[e + EXIT_MARKER.len()..].trim();
            let number = rest.split_whitespace().next().unwrap_or("");
            Reported::Exited(number.parse().map_err(|_| rest.to_owned()))
        }
        (_, Some(s)) => Reported::Stopped(text[s + STOP_MARKER.len()..].trim().to_owned()),
        (Some(_), None) | (None, None) => Reported::Nothing(text.trim().to_owned()),
    }
}

/// Sort the console's verdict lines by the run's `secret`.
pub fn claims(console: &[String], secret: &str) -> Claims {
    let tag = format!("{TAG_MARKER}{secret}]");
    let mut out = Claims::default();
    for line in console.iter().filter(|l| claims_verdict(l)) {
        let trimmed = line.trim_end();
        match trimmed.strip_suffix(tag.as_str()) {
            Some(text) if !secret.is_empty() => out.authentic.push(parse_reported(text)),
            _ => out.forged.push(line.trim().to_owned()),
        }
    }
    out
}

/// The guest's exit status, from the one authentic verdict line: `None` if
/// there is not exactly one, or it is not a guest exit.
pub fn guest_status(console: &[String], secret: &str) -> Option<i64> {
    match claims(console, secret).authentic.as_slice() {
        [Reported::Exited(Ok(n))] => Some(*n),
        _ => None,
    }
}

/// What a QEMU exit code means under this project's conventions.
pub fn qemu_exit_meaning(code: i32) -> String {
    match code {
        QEMU_SUCCESS => "the VMM reported success through isa-debug-exit (0x10)".to_owned(),
        QEMU_FAILURE => "the VMM reported failure through isa-debug-exit (0x11)".to_owned(),
        0 => "QEMU stopped on its own: the machine shut down, reset or triple-faulted \
              (-no-reboot), without the VMM writing to isa-debug-exit"
            .to_owned(),
        1 => "QEMU failed (bad arguments or unloadable image: see its messages above), \
              or the VMM wrote 0x00 to isa-debug-exit"
            .to_owned(),
        c if c > 1 && c % 2 == 1 => format!(
            "the VMM wrote {:#x} to isa-debug-exit, which is neither 0x10 (success) nor \
             0x11 (failure)",
            (c - 1) / 2
        ),
        c => format!("unexpected QEMU exit code {c}"),
    }
}

fn first_line_with<'a>(console: &'a [String], needle: &str) -> Option<&'a str> {
    console
        .iter()
        .find(|l| l.contains(needle))
        .map(|l| l.trim())
}

/// The first `>>PANIC<<` line of a Bochs log, without the timestamp.
fn bochs_panic(log: &str) -> Option<&str> {
    let line = log.lines().find(|l| l.contains(">>PANIC<<"))?;
    Some(
        line.split_once(">>PANIC<<")
            .map_or(line, |(_, msg)| msg)
            .trim(),
    )
}

/// The error-level lines of a Bochs log (`<ticks>e[<module>] message`),
/// without the tick count. Bochs names failed VMX/SVM checks here.
pub fn bochs_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter_map(|l| {
            let rest = l.trim_start_matches(|c: char| c.is_ascii_digit());
            (rest.len() < l.len() && rest.starts_with("e[")).then_some(&rest[1..])
        })
        .collect()
}

/// Judges one run.
pub fn judge(e: &Evidence<'_>) -> Verdict {
    let mut reasons = Vec::new();
    if e.exit == Exit::TimedOut {
        reasons.push(format!(
            "timed out after {} s: the emulator was still running and was killed",
            e.timeout_secs
        ));
    }
    if let Some(line) = first_line_with(e.console, PANIC_MARKER) {
        reasons.push(format!("the VMM panicked: `{line}`"));
    }
    if let Some(line) = first_line_with(e.console, UNHANDLED_MARKER) {
        reasons.push(format!("the VMM met an unhandled exit: `{line}`"));
    }
    let want = e.expected.outcome;
    let c = claims(e.console, e.secret);
    match (e.expected.forgeries, c.forged.as_slice()) {
        (None, []) => {}
        (None, [first, ..]) => reasons.push(format!(
            "{} console line(s) claim a verdict without this run's secret, so the guest \
             printed them (forged): `{first}`",
            c.forged.len()
        )),
        (Some(n), forged) if forged.len() == n => {}
        (Some(n), forged) => reasons.push(format!(
            "expect.txt says the guest forges {n} verdict line(s), but {} line(s) without \
             this run's secret claim one",
            forged.len()
        )),
    }
    match c.authentic.as_slice() {
        [] => reasons.push(format!(
            "the VMM printed no verdict (`{EXIT_MARKER}N` or `{STOP_MARKER}...` ending in \
             this run's `{TAG_MARKER}SECRET]`): {}",
            match want {
                Outcome::Stopped => "the VMM never stopped the guest",
                Outcome::Exited(_) => "the guest did not finish",
            }
        )),
        [one] => reasons.extend(outcome_reasons(e, one, want)),
        many => reasons.push(format!(
            "{} lines carry this run's secret; the VMM prints exactly one verdict",
            many.len()
        )),
    }
    // Bochs's log word must agree with the VMM's own verdict line (a
    // mismatch with expect.txt is already a reason above).
    let vmm_success = match c.authentic.as_slice() {
        [one] => *one == Reported::Exited(Ok(0)),
        _ => want.is_success(),
    };
    reasons.extend(exit_reasons(e, want, vmm_success));
    let missing = e.expected.missing(e.console);
    if !missing.is_empty() {
        const SHOWN: usize = 3;
        let mut list = missing
            .iter()
            .take(SHOWN)
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ");
        if missing.len() > SHOWN {
            list.push_str(&format!(" and {} more", missing.len() - SHOWN));
        }
        reasons.push(format!(
            "{} of {} expected console lines (expect.txt) not seen: {list}",
            missing.len(),
            e.expected.lines.len()
        ));
    }
    if reasons.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail(reasons)
    }
}

/// Whether the VMM's one verdict is the outcome `expect.txt` wants.
fn outcome_reasons(e: &Evidence<'_>, got: &Reported, want: Outcome) -> Vec<String> {
    let mut reasons = Vec::new();
    match (got, want) {
        (Reported::Exited(Ok(n)), Outcome::Exited(w)) if *n == i64::from(w) => {}
        (Reported::Exited(Ok(n)), Outcome::Exited(0)) => reasons.push(format!(
            "the guest exited with status {n} (0 means success)"
        )),
        (Reported::Exited(Ok(n)), Outcome::Exited(w)) => reasons.push(format!(
            "the guest exited with status {n}, but expect.txt wants `outcome: exited {w}`"
        )),
        (Reported::Exited(Err(text)), _) => {
            reasons.push(format!("unreadable guest status `{text}`"))
        }
        (Reported::Exited(Ok(n)), Outcome::Stopped) => reasons.push(format!(
            "the guest exited (status {n}), but expect.txt wants `outcome: stopped`: the VMM \
             had to stop it"
        )),
        (Reported::Stopped(why), Outcome::Exited(_)) => {
            reasons.push(format!("the VMM stopped the guest: {why}"))
        }
        (Reported::Stopped(why), Outcome::Stopped) => {
            let bindings = e.expected.bindings(e.console);
            for text in &e.expected.stopped {
                match substitute(text, &bindings) {
                    Ok(t) if contains_word_end(why, &t) => {}
                    Ok(t) => reasons.push(format!(
                        "the VMM stopped the guest with `{why}`, not with `{t}` (expect.txt \
                         `stopped:`)"
                    )),
                    Err(names) => reasons.push(format!(
                        "expect.txt `stopped: {text}` uses {} that no console line bound",
                        names
                            .iter()
                            .map(|n| format!("{{{n}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
            }
        }
        (Reported::Nothing(text), _) => reasons.push(format!(
            "a line carries this run's secret but no verdict: `{text}`"
        )),
    }
    reasons
}

/// Whether the emulator stopped the way the VMM stops it for `want`: QEMU's
/// exit code; Bochs's shutdown request and the VMM's `pass`/`fail` log line,
/// which must say `pass` exactly when `vmm_success` (the VMM's verdict line
/// reported status 0).
fn exit_reasons(e: &Evidence<'_>, want: Outcome, vmm_success: bool) -> Vec<String> {
    let success = want.is_success();
    let mut reasons = Vec::new();
    match (e.emulator, e.exit) {
        (_, Exit::TimedOut) => {}
        (_, Exit::Signal(s)) => reasons.push(format!("the emulator was killed by signal {s}")),
        (Emulator::Qemu, Exit::Code(QEMU_SUCCESS)) if success => {}
        (Emulator::Qemu, Exit::Code(QEMU_FAILURE)) if !success => {}
        (Emulator::Qemu, Exit::Code(code)) => reasons.push(format!(
            "QEMU exit code {code}: {}{}",
            qemu_exit_meaning(code),
            if success {
                ""
            } else {
                " (expect.txt wants the VMM's failure report, 35)"
            }
        )),
        (Emulator::Bochs, Exit::Code(code)) => {
            let log = e.bochs_log.unwrap_or("");
            let shutdown = log.contains(BOCHS_SHUTDOWN);
            if !(code == 1 && shutdown) {
                let why = match bochs_panic(log) {
                    Some(msg) => format!("Bochs stopped with: {msg}"),
                    None if e.bochs_log.is_none() => "no Bochs log was written".to_owned(),
                    None if code == 0 => {
                        "Bochs quit normally (magic breakpoint or debugger stop?)".to_owned()
                    }
                    None => "see the Bochs log".to_owned(),
                };
                reasons.push(format!(
                    "Bochs exit code {code} without the VMM's Shutdown-port (0x8900) request: {why}"
                ));
            } else {
                let word = if vmm_success { "pass" } else { "fail" };
                let line = format!("{BOCHS_VERDICT}{word} {}", e.secret);
                let found = log.lines().any(|l| l.trim_end().ends_with(line.as_str()));
                if !found {
                    let other = log
                        .lines()
                        .find(|l| l.contains(BOCHS_VERDICT))
                        .map_or("none".to_owned(), |l| format!("`{}`", l.trim()));
                    reasons.push(format!(
                        "the Bochs log lacks the VMM's `{BOCHS_VERDICT}{word} SECRET` line for \
                         this run (BIOS info port 0x402; found: {other})"
                    ));
                }
            }
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "00c0ffee00c0ffee";

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    /// The VMM's verdict lines for this test's secret.
    fn exited(n: i64) -> String {
        format!("vmm: guest exited with status {n} [verdict {S}]")
    }

    fn stopped(why: &str) -> String {
        format!("vmm: guest stopped: {why} [verdict {S}]")
    }

    fn qemu(console: &[String], exit: Exit, expected: &Expectations) -> Verdict {
        judge(&Evidence {
            emulator: Emulator::Qemu,
            console,
            exit,
            timeout_secs: 30,
            expected,
            bochs_log: None,
            secret: S,
        })
    }

    fn reasons(v: Verdict) -> String {
        match v {
            Verdict::Pass => panic!("expected a failure"),
            Verdict::Fail(r) => r.join("\n"),
        }
    }

    #[test]
    fn secrets_are_fresh_hex() {
        let (a, b) = (new_secret(), new_secret());
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(cmdline_word("ab"), "verdict=ab");
    }

    #[test]
    fn qemu_success_needs_the_vmms_verdict_and_33() {
        let none = Expectations::default();
        let ok = lines(&format!("vmm: hi\n{}", exited(0)));
        assert_eq!(qemu(&ok, Exit::Code(33), &none), Verdict::Pass);
        assert!(reasons(qemu(&ok, Exit::Code(35), &none)).contains("exit code 35"));
        assert!(reasons(qemu(&ok, Exit::Code(0), &none)).contains("triple-faulted"));
        let no_marker = lines("vmm: hi");
        assert!(reasons(qemu(&no_marker, Exit::Code(33), &none)).contains("no verdict"));
    }

    #[test]
    fn a_guest_cannot_forge_the_verdict() {
        let none = Expectations::default();
        // The guest prints the VMM's success line, with no tag or a made-up
        // one, then triple-faults (QEMU 35) or exits with a failure.
        for forged in [
            "vmm: guest exited with status 0",
            "vmm: guest exited with status 0 [verdict 0123456789abcdef]",
            "vmm: guest exited with status 0 [verdict ]",
        ] {
            for vmm in [
                stopped("guest shutdown (triple fault) at RIP 0x1"),
                exited(3),
            ] {
                let console = lines(&format!("{forged}\n{vmm}"));
                let r = reasons(qemu(&console, Exit::Code(35), &none));
                assert!(r.contains("forged"), "{r}");
                // Even if the forger also managed QEMU's success code.
                let r = reasons(qemu(&console, Exit::Code(33), &none));
                assert!(r.contains("forged"), "{r}");
            }
            // Without any verdict of the VMM (it hung, or never ran).
            let r = reasons(qemu(&lines(forged), Exit::Code(33), &none));
            assert!(r.contains("no verdict") && r.contains("forged"), "{r}");
        }
        // A stop line from the guest fails a run that otherwise passed.
        let console = lines(&format!(
            "vmm: guest stopped: guest shutdown (triple fault) at RIP 0x1\n{}",
            exited(0)
        ));
        assert!(reasons(qemu(&console, Exit::Code(33), &none)).contains("forged"));
        // Guest text left on the VMM's line does not change what it says.
        let console = lines(&format!("vmm: guest exited with status 0 {}", exited(3)));
        let r = reasons(qemu(&console, Exit::Code(35), &none));
        assert!(r.contains("status 3 (0 means success)"), "{r}");
        assert_eq!(guest_status(&console, S), Some(3));
        let console = lines(&format!(
            "vmm: guest exited with status 0 {}",
            stopped("guest shutdown (triple fault) at RIP 0x1")
        ));
        assert!(reasons(qemu(&console, Exit::Code(35), &none)).contains("stopped the guest"));
        // Two lines with the secret: the VMM prints one.
        let console = lines(&format!("{}\n{}", exited(0), exited(0)));
        assert!(reasons(qemu(&console, Exit::Code(33), &none)).contains("2 lines carry"));
    }

    #[test]
    fn forgeries_expected_by_the_example() {
        let e = Expectations::parse("outcome: exited 3\nforgeries: 2\n").unwrap();
        let console = lines(&format!(
            "vmm: guest exited with status 0\nvmm: guest exited with status 0 [verdict 1234]\n{}",
            exited(3)
        ));
        assert_eq!(qemu(&console, Exit::Code(35), &e), Verdict::Pass);
        assert!(reasons(qemu(&console, Exit::Code(33), &e)).contains("exit code 33"));
        // Judged without the secret, the forged success would count: the
        // secret is what decides.
        let r = reasons(judge(&Evidence {
            emulator: Emulator::Qemu,
            console: &console,
            exit: Exit::Code(35),
            timeout_secs: 30,
            expected: &e,
            bochs_log: None,
            secret: "1234",
        }));
        assert!(
            r.contains("status 0, but expect.txt wants `outcome: exited 3`"),
            "{r}"
        );
        // Too few or too many forgeries seen.
        let r = reasons(qemu(&console[1..], Exit::Code(35), &e));
        assert!(r.contains("forges 2 verdict line(s), but 1"), "{r}");
        let plain = Expectations::parse("outcome: exited 3\n").unwrap();
        assert!(reasons(qemu(&console, Exit::Code(35), &plain)).contains("2 console line(s)"));
        assert_eq!(qemu(&console[2..], Exit::Code(35), &plain), Verdict::Pass);
    }

    #[test]
    fn failures_are_explained() {
        let none = Expectations::default();
        let bad = lines(&exited(3));
        assert!(reasons(qemu(&bad, Exit::Code(35), &none)).contains("status 3"));
        let panic = lines("vmm: PANIC at x.rs:1: boom");
        let r = reasons(qemu(&panic, Exit::Code(35), &none));
        assert!(r.contains("panicked: `vmm: PANIC at x.rs:1: boom`"), "{r}");
        let ok = lines(&exited(0));
        let r = reasons(qemu(&ok, Exit::TimedOut, &none));
        assert!(r.starts_with("timed out after 30 s"), "{r}");
        assert!(reasons(qemu(&ok, Exit::Signal(9), &none)).contains("signal 9"));
        assert!(reasons(qemu(&ok, Exit::Code(7), &none)).contains("wrote 0x3"));
    }

    /// The markers are the VMM's own text: vmm-core's verdict lines
    /// (`rt/start.rs`) and its unhandled-exit reason (`stop.rs`), read from
    /// the source, so that a change there fails here.
    #[test]
    fn markers_match_the_vmms_source() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let read = |f: &str| std::fs::read_to_string(root.join("vmm-core/src").join(f)).unwrap();
        let start = read("rt/start.rs");
        assert!(start.contains(&format!("\"{EXIT_MARKER}{{status}}{{tag}}\"")));
        assert!(start.contains(&format!("\"{STOP_MARKER}{{stop}}{{tag}}\"")));
        assert!(start.contains(&format!("\" {TAG_MARKER}{{}}]\"")));
        assert!(start.contains(&format!("b\"{BOCHS_VERDICT}\"")));
        let stop = read("stop.rs");
        let reason = UNHANDLED_MARKER.strip_prefix(STOP_MARKER).unwrap();
        assert!(stop.contains(&format!("\"{reason} {{}} (raw code")));
    }

    #[test]
    fn unhandled_exits_are_named() {
        // The line vmm-core prints for Stop::Unhandled (stop.rs).
        let line = stopped("unhandled exit GETSEC (raw code 0xb, info 0x0/0x0) at RIP 0x201000");
        let r = reasons(qemu(
            &lines(&line),
            Exit::Code(35),
            &Expectations::default(),
        ));
        assert!(
            r.contains("the VMM met an unhandled exit: `vmm: guest stopped: unhandled exit GETSEC"),
            "{r}"
        );
        let e = Expectations::parse("outcome: stopped\nstopped: unhandled exit\n").unwrap();
        assert!(reasons(qemu(&lines(&line), Exit::Code(35), &e)).contains("unhandled exit"));
    }

    #[test]
    fn expected_lines_are_required() {
        let e = Expectations::parse("guest: hello\n").unwrap();
        let ok = lines(&format!("guest: hello world\n{}", exited(0)));
        assert_eq!(qemu(&ok, Exit::Code(33), &e), Verdict::Pass);
        let missing = lines(&exited(0));
        assert!(reasons(qemu(&missing, Exit::Code(33), &e)).contains("`guest: hello`"));
    }

    #[test]
    fn stopped_outcome_checks_the_reason() {
        let e = Expectations::parse(
            "outcome: stopped\ng: load at RIP {rip}\n\
             stopped: guest touched guest-physical 0x2000000, outside its RAM, at RIP {rip}\n",
        )
        .unwrap();
        let npf = |rip: &str| {
            stopped(&format!(
                "guest touched guest-physical 0x2000000, outside its RAM, at RIP {rip}"
            ))
        };
        let stop = lines(&format!("g: load at RIP 0x201000\n{}", npf("0x201000")));
        assert_eq!(qemu(&stop, Exit::Code(35), &e), Verdict::Pass);
        assert!(reasons(qemu(&stop, Exit::Code(33), &e)).contains("exit code 33"));
        // Another RIP, a longer one, another reason: all fail.
        for other in [
            npf("0x201003"),
            npf("0x2010000"),
            stopped("guest shutdown (triple fault) at RIP 0x201000"),
        ] {
            let console = lines(&format!("g: load at RIP 0x201000\n{other}"));
            let r = reasons(qemu(&console, Exit::Code(35), &e));
            assert!(r.contains("not with `guest touched guest-physical 0x2000000, outside its RAM, at RIP 0x201000`"), "{r}");
        }
        // The guest never said where its load is.
        let r = reasons(qemu(&lines(&npf("0x201000")), Exit::Code(35), &e));
        assert!(r.contains("uses {rip}"), "{r}");
        let exited0 = lines(&format!("g: load at RIP 0x1\n{}", exited(0)));
        let r = reasons(qemu(&exited0, Exit::Code(33), &e));
        assert!(r.contains("wants `outcome: stopped`"), "{r}");
        let mut panicked = stop.clone();
        panicked.push("vmm: PANIC at x.rs:1: boom".to_owned());
        assert!(reasons(qemu(&panicked, Exit::Code(35), &e)).contains("panicked"));
        // The default outcome does not accept a stop.
        let none = Expectations::default();
        assert!(reasons(qemu(&stop, Exit::Code(35), &none)).contains("stopped the guest"));
    }

    #[test]
    fn status_parsing() {
        let c = |t: &str| claims(&lines(t), S).authentic;
        assert_eq!(
            c(&format!("{}  ", exited(0))),
            vec![Reported::Exited(Ok(0))]
        );
        assert_eq!(c(&exited(-2)), vec![Reported::Exited(Ok(-2))]);
        assert_eq!(c("x"), vec![]);
        assert!(matches!(
            c(&format!("vmm: guest exited with status ? [verdict {S}]"))[..],
            [Reported::Exited(Err(_))]
        ));
        assert_eq!(
            c(&format!("[verdict {S}]")),
            vec![Reported::Nothing(String::new())]
        );
        assert_eq!(guest_status(&lines(&exited(7)), S), Some(7));
        assert_eq!(guest_status(&lines(&exited(7)), "other"), None);
        assert_eq!(
            guest_status(&lines(&exited(7)), ""),
            None,
            "no secret, no verdict"
        );
    }

    #[test]
    fn bochs_error_lines() {
        let log = "00001i[CPU0  ] fine\n00002e[CPU0  ] RDMSR: Unknown register 0xc0010114\n\
                   e[x] not a log line\n00003p[UNMAP ] >>PANIC<< x\n";
        assert_eq!(
            bochs_errors(log),
            vec!["[CPU0  ] RDMSR: Unknown register 0xc0010114"]
        );
    }

    #[test]
    fn bochs_needs_the_shutdown_request_and_the_vmms_word() {
        let none = Expectations::default();
        let ok = lines(&exited(0));
        let pass = format!("00048222000i[BIOS  ] vmm: verdict pass {S}\n");
        let fail = format!("00048222000i[BIOS  ] vmm: verdict fail {S}\n");
        let shutdown = "00048222601p[UNMAP ] >>PANIC<< Shutdown port: shutdown requested\n";
        let triple =
            "00001p[CPU0  ] >>PANIC<< exception(): 3rd (13) exception with no resolution\n";
        let bochs = |console: &[String], exit, log: Option<&str>, expected: &Expectations| {
            judge(&Evidence {
                emulator: Emulator::Bochs,
                console,
                exit,
                timeout_secs: 60,
                expected,
                bochs_log: log,
                secret: S,
            })
        };
        let log = format!("{pass}{shutdown}");
        assert_eq!(bochs(&ok, Exit::Code(1), Some(&log), &none), Verdict::Pass);
        let r = reasons(bochs(&ok, Exit::Code(1), Some(shutdown), &none));
        assert!(
            r.contains("lacks the VMM's `vmm: verdict pass SECRET`"),
            "{r}"
        );
        let r = reasons(bochs(
            &ok,
            Exit::Code(1),
            Some(&format!("{fail}{shutdown}")),
            &none,
        ));
        assert!(
            r.contains("found: `00048222000i[BIOS  ] vmm: verdict fail"),
            "{r}"
        );
        // A failing status is one reason (what `cargo xtask linux` passes
        // on), not two: the log says `fail` as the VMM's line does.
        let three = lines(&exited(3));
        let log = format!("{fail}{shutdown}");
        let r = reasons(bochs(&three, Exit::Code(1), Some(&log), &none));
        assert_eq!(r, "the guest exited with status 3 (0 means success)");
        let r = reasons(bochs(
            &three,
            Exit::Code(1),
            Some(&format!("{pass}{shutdown}")),
            &none,
        ));
        assert!(
            r.contains("lacks the VMM's `vmm: verdict fail SECRET`"),
            "{r}"
        );
        let e = Expectations::parse("outcome: exited 3\n").unwrap();
        assert_eq!(bochs(&three, Exit::Code(1), Some(&log), &e), Verdict::Pass);
        let r = reasons(bochs(&ok, Exit::Code(1), Some(triple), &none));
        assert!(
            r.contains("exception(): 3rd (13) exception with no resolution"),
            "{r}"
        );
        assert!(reasons(bochs(&ok, Exit::Code(0), Some(""), &none)).contains("magic breakpoint"));
        assert!(reasons(bochs(&ok, Exit::Code(1), None, &none)).contains("no Bochs log"));
    }
}
