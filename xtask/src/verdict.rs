//! Deciding whether a run succeeded, and explaining why not.
//!
//! A run passes only if all of these hold:
//!
//! - the emulator exited by itself (no timeout, no signal);
//! - the console shows `vmm: guest exited with status 0` (and no other
//!   status line after it);
//! - no console line contains `vmm: PANIC` or `vmm: unhandled exit`;
//! - QEMU: the exit code is 33, i.e. the VMM wrote 0x10 to isa-debug-exit;
//!   Bochs: the exit code is 1 and the Bochs log shows the Shutdown-port
//!   request (port 0x8900), i.e. the VMM stopped the machine on purpose;
//! - every line of the example's `expect.txt` appears in the console.
//!
//! With `outcome: stopped` in `expect.txt` (an escape attempt the VMM must
//! stop), the second and fourth rules become: the console shows `vmm:
//! guest stopped: ` and no guest exit status; QEMU's exit code is 35 (the
//! VMM's failure report); Bochs, as above, stopped through the Shutdown
//! port.

use crate::expect::{Expectations, Outcome};
use crate::platform::Emulator;
use crate::runner::Exit;

/// The line the VMM prints when the guest is done.
pub const EXIT_MARKER: &str = "vmm: guest exited with status ";
/// The line the VMM prints when it stops the guest (escape attempts).
pub const STOP_MARKER: &str = "vmm: guest stopped: ";
/// Printed by the VMM's panic handler.
pub const PANIC_MARKER: &str = "vmm: PANIC";
/// Printed when the VMM meets an exit it has no handler for.
pub const UNHANDLED_MARKER: &str = "vmm: unhandled exit";
/// QEMU's exit code when the VMM writes 0x10 (success) to isa-debug-exit.
pub const QEMU_SUCCESS: i32 = 33;
/// QEMU's exit code when the VMM writes 0x11 (failure) to isa-debug-exit.
pub const QEMU_FAILURE: i32 = 35;
/// What Bochs logs when something writes "Shutdown" to port 0x8900.
pub const BOCHS_SHUTDOWN: &str = "Shutdown port: shutdown requested";

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
}

/// The outcome of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The run succeeded.
    Pass,
    /// The run failed, for these reasons (most important first).
    Fail(Vec<String>),
}

/// The status of the last `vmm: guest exited with status N` line:
/// `None` if there is none, `Some(Err(text))` if N does not parse.
pub fn guest_status(console: &[String]) -> Option<Result<i64, String>> {
    let line = console.iter().rev().find(|l| l.contains(EXIT_MARKER))?;
    let (_, rest) = line.split_once(EXIT_MARKER)?;
    let text = rest.trim();
    let number = text.split_whitespace().next().unwrap_or("");
    Some(number.parse().map_err(|_| text.to_owned()))
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
    let stopped = e.expected.outcome == Outcome::Stopped;
    if stopped {
        if guest_status(e.console).is_some() {
            reasons.push(format!(
                "the guest exited (`{EXIT_MARKER}N`), but expect.txt wants `outcome: stopped`: \
                 the VMM had to stop it"
            ));
        }
        if first_line_with(e.console, STOP_MARKER).is_none() {
            reasons.push(format!(
                "the console never showed `{STOP_MARKER}...` (expect.txt wants `outcome: stopped`)"
            ));
        }
    }
    match guest_status(e.console) {
        _ if stopped => {}
        None => reasons.push(format!(
            "the console never showed `{EXIT_MARKER}N` (the guest did not finish)"
        )),
        Some(Ok(0)) => {}
        Some(Ok(n)) => reasons.push(format!(
            "the guest exited with status {n} (0 means success)"
        )),
        Some(Err(text)) => reasons.push(format!("unreadable guest status `{text}`")),
    }
    match (e.emulator, e.exit) {
        (_, Exit::TimedOut) => {}
        (_, Exit::Signal(s)) => reasons.push(format!("the emulator was killed by signal {s}")),
        (Emulator::Qemu, Exit::Code(QEMU_SUCCESS)) if !stopped => {}
        (Emulator::Qemu, Exit::Code(QEMU_FAILURE)) if stopped => {}
        (Emulator::Qemu, Exit::Code(code)) => reasons.push(format!(
            "QEMU exit code {code}: {}",
            qemu_exit_meaning(code)
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
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    fn qemu(console: &[String], exit: Exit, expected: &Expectations) -> Verdict {
        judge(&Evidence {
            emulator: Emulator::Qemu,
            console,
            exit,
            timeout_secs: 30,
            expected,
            bochs_log: None,
        })
    }

    fn reasons(v: Verdict) -> String {
        match v {
            Verdict::Pass => panic!("expected a failure"),
            Verdict::Fail(r) => r.join("\n"),
        }
    }

    #[test]
    fn qemu_success_needs_marker_and_33() {
        let none = Expectations::default();
        let ok = lines("vmm: hi\nvmm: guest exited with status 0");
        assert_eq!(qemu(&ok, Exit::Code(33), &none), Verdict::Pass);
        assert!(reasons(qemu(&ok, Exit::Code(35), &none)).contains("exit code 35"));
        assert!(reasons(qemu(&ok, Exit::Code(0), &none)).contains("triple-faulted"));
        let no_marker = lines("vmm: hi");
        assert!(reasons(qemu(&no_marker, Exit::Code(33), &none)).contains("never showed"));
    }

    #[test]
    fn failures_are_explained() {
        let none = Expectations::default();
        let bad = lines("vmm: guest exited with status 3");
        assert!(reasons(qemu(&bad, Exit::Code(35), &none)).contains("status 3"));
        let panic = lines("vmm: PANIC at x.rs:1: boom");
        let r = reasons(qemu(&panic, Exit::Code(35), &none));
        assert!(r.contains("panicked: `vmm: PANIC at x.rs:1: boom`"), "{r}");
        let unhandled = lines("vmm: unhandled exit 0x7b");
        assert!(reasons(qemu(&unhandled, Exit::Code(35), &none)).contains("unhandled exit"));
        let ok = lines("vmm: guest exited with status 0");
        let r = reasons(qemu(&ok, Exit::TimedOut, &none));
        assert!(r.starts_with("timed out after 30 s"), "{r}");
        assert!(reasons(qemu(&ok, Exit::Signal(9), &none)).contains("signal 9"));
        assert!(reasons(qemu(&ok, Exit::Code(7), &none)).contains("wrote 0x3"));
    }

    #[test]
    fn expected_lines_are_required() {
        let e = Expectations::parse("guest: hello\n").unwrap();
        let ok = lines("guest: hello world\nvmm: guest exited with status 0");
        assert_eq!(qemu(&ok, Exit::Code(33), &e), Verdict::Pass);
        let missing = lines("vmm: guest exited with status 0");
        assert!(reasons(qemu(&missing, Exit::Code(33), &e)).contains("`guest: hello`"));
    }

    #[test]
    fn stopped_outcome_needs_the_diagnosis_and_the_failure_exit() {
        let e = Expectations::parse("outcome: stopped\nguest touched guest-physical 0x2000000\n")
            .unwrap();
        let stop = lines(
            "vmm: guest stopped: guest touched guest-physical 0x2000000, outside its RAM, at RIP 0x1",
        );
        assert_eq!(qemu(&stop, Exit::Code(35), &e), Verdict::Pass);
        assert!(reasons(qemu(&stop, Exit::Code(33), &e)).contains("exit code 33"));
        let exited =
            lines("guest touched guest-physical 0x2000000\nvmm: guest exited with status 0");
        let r = reasons(qemu(&exited, Exit::Code(33), &e));
        assert!(r.contains("wants `outcome: stopped`"), "{r}");
        assert!(r.contains("never showed `vmm: guest stopped: ...`"), "{r}");
        let mut panicked = stop.clone();
        panicked.push("vmm: PANIC at x.rs:1: boom".to_owned());
        assert!(reasons(qemu(&panicked, Exit::Code(35), &e)).contains("panicked"));
        let other = lines("vmm: guest stopped: guest shutdown (triple fault) at RIP 0x1");
        assert!(reasons(qemu(&other, Exit::Code(35), &e)).contains("0x2000000"));
        // The default outcome still wants the guest's exit.
        let none = Expectations::default();
        assert!(reasons(qemu(&stop, Exit::Code(35), &none)).contains("never showed"));
    }

    #[test]
    fn status_parsing() {
        assert_eq!(
            guest_status(&lines("vmm: guest exited with status 0  ")),
            Some(Ok(0))
        );
        assert_eq!(
            guest_status(&lines(
                "vmm: guest exited with status 0\nvmm: guest exited with status -2"
            )),
            Some(Ok(-2))
        );
        assert_eq!(guest_status(&lines("x")), None);
        assert!(matches!(
            guest_status(&lines("vmm: guest exited with status ?")),
            Some(Err(_))
        ));
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
    fn bochs_needs_the_shutdown_request() {
        let none = Expectations::default();
        let ok = lines("vmm: guest exited with status 0");
        let shutdown = "00048222601p[UNMAP ] >>PANIC<< Shutdown port: shutdown requested\n";
        let triple =
            "00001p[CPU0  ] >>PANIC<< exception(): 3rd (13) exception with no resolution\n";
        let bochs = |exit, log| {
            judge(&Evidence {
                emulator: Emulator::Bochs,
                console: &ok,
                exit,
                timeout_secs: 60,
                expected: &none,
                bochs_log: log,
            })
        };
        assert_eq!(bochs(Exit::Code(1), Some(shutdown)), Verdict::Pass);
        let r = reasons(bochs(Exit::Code(1), Some(triple)));
        assert!(
            r.contains("exception(): 3rd (13) exception with no resolution"),
            "{r}"
        );
        assert!(reasons(bochs(Exit::Code(0), Some(""))).contains("magic breakpoint"));
        assert!(reasons(bochs(Exit::Code(1), None)).contains("no Bochs log"));
    }
}
