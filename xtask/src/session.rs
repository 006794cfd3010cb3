//! Booting one example on one machine: prepare the emulator, run it with the
//! console streamed live, judge the result and report it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::expect::Expectations;
use crate::paths::{Layout, Role};
use crate::platform::{Launched, Machine, Payload};
use crate::runner::{self, ConsoleSource, Exit, Launch};
use crate::ui;
use crate::verdict::{self, Evidence, Verdict};

/// Console lines shown again when a run fails.
pub const TAIL_LINES: usize = 20;

/// Error lines of the emulator's log (Bochs) shown when a run fails.
const LOG_ERROR_LINES: usize = 5;

/// How long a run may take unless told otherwise. Real runs take well under
/// a second on QEMU and about 2 s on Bochs.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// One run to do.
pub struct Boot<'a> {
    /// What to boot: an example's images, a Linux bundle, a kernel alone.
    pub payload: Payload,
    /// Paths.
    pub layout: &'a Layout,
    /// The example.
    pub name: &'a str,
    /// Where to run it.
    pub machine: Machine,
    /// When to give up.
    pub timeout: Duration,
    /// What its console must show.
    pub expected: &'a Expectations,
    /// Label console lines with the run (for parallel runs).
    pub labelled: bool,
}

/// The result of one run.
pub struct Outcome {
    /// The emulator died by a signal within a second, before any console
    /// output.
    pub crashed_at_start: bool,
    /// When the first console line of the guest's Linux program appeared
    /// (the line after [`INIT_RUNNING`]), from the emulator's start.
    pub first_program_line: Option<Duration>,
    /// The status the guest reported (`vmm: guest exited with status N`,
    /// or the Linux init's line when no VMM runs).
    pub status: Option<i64>,
    /// Pass or fail with reasons.
    pub verdict: Verdict,
    /// Time the emulator ran (zero if it never started).
    pub elapsed: Duration,
}

fn shell_words(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| {
            let a = a.to_string_lossy();
            if a.is_empty() || a.contains([' ', '"', '\'']) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn relative<'p>(layout: &Layout, path: &'p Path) -> &'p Path {
    path.strip_prefix(&layout.root).unwrap_or(path)
}

/// Boots the example and prints what happens; never fails for reasons
/// that belong to the run itself (those become [`Verdict::Fail`]).
pub fn boot(b: &Boot<'_>) -> Outcome {
    let label = format!("{} on {}", b.name, b.machine);
    let (prefix, stderr_prefix) = if b.labelled {
        (
            format!("  {}@{} | ", b.name, b.machine),
            format!("  {}@{} ! ", b.name, b.machine),
        )
    } else {
        ("  | ".to_owned(), "  ! ".to_owned())
    };
    let first = boot_inner(b, &label, prefix.clone(), stderr_prefix.clone());
    let first = match first {
        // An emulator that dies by a signal within a second, before its
        // console shows anything, never ran the images (seen once with
        // several Bochs processes starting at the same moment): try once
        // more rather than blame the VMM.
        Ok(o) if o.crashed_at_start => {
            println!(
                "{label}: the emulator crashed at start, before any console output: retrying once"
            );
            boot_inner(b, &label, prefix, stderr_prefix)
        }
        other => other,
    };
    match first {
        Ok(outcome) => outcome,
        Err(e) => {
            let reason = format!("could not run: {e:#}");
            println!("{label}: FAIL: {reason}");
            Outcome {
                crashed_at_start: false,
                first_program_line: None,
                status: None,
                verdict: Verdict::Fail(vec![reason]),
                elapsed: Duration::ZERO,
            }
        }
    }
}

fn boot_inner(b: &Boot<'_>, label: &str, prefix: String, stderr_prefix: String) -> Result<Outcome> {
    let files: Vec<&Path> = match &b.payload {
        Payload::Vmm { vmm, module, .. } => vec![vmm, module],
        Payload::Kernel { kernel, initrd, .. } => vec![kernel, initrd],
    };
    for image in files {
        if !image.is_file() {
            bail!(
                "{} does not exist (build the examples first)",
                image.display()
            );
        }
    }
    let run_dir = b.layout.run_dir(b.name, &b.machine.name());
    // Another xtask process booting the same example on the same platform
    // would delete this run directory under us: take the run's lock file
    // (held until this function returns) and wait for it if need be.
    let _lock = lock_run_dir(&run_dir)?;
    // A fresh secret per run: only the VMM learns it (its command line),
    // and only a verdict line carrying it counts (crate::verdict).
    let secret = verdict::new_secret();
    let vmm_cmdline = verdict::cmdline_word(&secret);
    let emulator = b.machine.emulator.driver();
    let Launched {
        command,
        console,
        log,
        files,
        note,
    } = emulator.launch(b.machine, &run_dir, &b.payload, &vmm_cmdline)?;
    println!(
        "booting {label}: {} (timeout {} s)",
        shell_words(&command),
        b.timeout.as_secs()
    );
    if let Some((what, dir)) = &note {
        println!("  ({what} in {})", relative(b.layout, dir).display());
    }
    let console_from_stdout = matches!(console, ConsoleSource::Stdout);
    let finished = runner::run(Launch {
        command,
        console,
        timeout: b.timeout,
        prefix,
        stderr_prefix,
    })?;
    let console_file = b.layout.console_file(b.name, &b.machine.name());
    if console_from_stdout {
        // Keep a console read from stdout next to the file consoles for
        // later reading.
        let mut text = finished.console.join("\n");
        text.push('\n');
        std::fs::write(&console_file, text)
            .with_context(|| format!("writing {}", console_file.display()))?;
    }
    let log = log.and_then(|f| std::fs::read_to_string(f).ok());
    let first_program_line = first_program_line(&finished.console, &finished.times);
    let (verdict, status) = match &b.payload {
        Payload::Vmm { .. } => (
            verdict::judge(&Evidence {
                emulator,
                console: &finished.console,
                exit: finished.exit,
                timeout_secs: b.timeout.as_secs(),
                expected: b.expected,
                log: log.as_deref(),
                secret: &secret,
            }),
            verdict::guest_status(&finished.console, &secret),
        ),
        // No VMM: a measurement run. It counts if the init ran the program
        // to its end.
        Payload::Kernel { .. } => match init_status(&finished.console) {
            Some(n) => (Verdict::Pass, Some(n)),
            None => (
                Verdict::Fail(vec![format!(
                    "the Linux init never reported the program's exit status ({INIT_EXITED}...)"
                )]),
                None,
            ),
        },
    };
    let exit = match finished.exit {
        Exit::Code(c) => format!("exit code {c}"),
        Exit::Signal(s) => format!("signal {s}"),
        Exit::TimedOut => "timed out".to_owned(),
    };
    let mut report = String::new();
    match &verdict {
        Verdict::Pass => {
            report.push_str(&format!(
                "{label}: PASS in {} ({exit})",
                ui::secs(finished.elapsed)
            ));
        }
        Verdict::Fail(reasons) => {
            report.push_str(&format!(
                "{label}: FAIL after {} ({exit})\n",
                ui::secs(finished.elapsed)
            ));
            for r in reasons {
                report.push_str(&format!("  reason: {r}\n"));
            }
            let start = finished.console.len().saturating_sub(TAIL_LINES);
            if finished.console.is_empty() {
                report.push_str("  the console stayed empty\n");
            } else {
                report.push_str(&format!(
                    "  last {} console lines:\n",
                    finished.console.len() - start
                ));
                for line in &finished.console[start..] {
                    report.push_str(&format!("  | {line}\n"));
                }
            }
            if !finished.stderr.is_empty() {
                report.push_str("  emulator messages:\n");
                for line in finished.stderr.iter().rev().take(TAIL_LINES).rev() {
                    report.push_str(&format!("  ! {line}\n"));
                }
            }
            let errors = log
                .as_deref()
                .map(|l| emulator.log_errors(l))
                .unwrap_or_default();
            if !errors.is_empty() {
                let shown = errors.len().min(LOG_ERROR_LINES);
                report.push_str(&format!(
                    "  last {shown} of {} error lines in the {} log:\n",
                    errors.len(),
                    b.machine.emulator.facts().title
                ));
                for line in &errors[errors.len() - shown..] {
                    report.push_str(&format!("  {}: {line}\n", b.machine.emulator.facts().name));
                }
            }
            report.push_str(&format!(
                "  console: {}",
                relative(b.layout, &console_file).display()
            ));
            for (what, path) in &files {
                report.push_str(&format!(
                    "\n  {what}: {}",
                    relative(b.layout, path).display()
                ));
            }
        }
    }
    if let Some(t) = first_program_line {
        report.push_str(&format!(
            "\n  boot: the Linux program's first line after {}",
            ui::secs(t)
        ));
    }
    println!("{report}");
    Ok(Outcome {
        crashed_at_start: matches!(finished.exit, Exit::Signal(_))
            && finished.console.is_empty()
            && finished.elapsed < Duration::from_secs(1),
        first_program_line,
        status,
        verdict,
        elapsed: finished.elapsed,
    })
}

/// Lock `run_dir`'s lock file (`run_dir` + `.lock`) exclusively, waiting
/// (and saying so) while another process holds it.
fn lock_run_dir(run_dir: &Path) -> Result<std::fs::File> {
    let path = run_dir.with_extension("lock");
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            println!(
                "waiting for another xtask process that uses {}",
                run_dir.display()
            );
            file.lock()
                .with_context(|| format!("locking {}", path.display()))?;
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
    Ok(file)
}

/// The images of example `name`: its VMM with its bare-metal guest.
pub fn example_payload(layout: &Layout, name: &str) -> Payload {
    Payload::Vmm {
        vmm: layout.image(name, Role::Vmm),
        module: layout.image(name, Role::Guest),
        linux: false,
    }
}

/// What `vmmcall-init` prints just before it starts the program.
pub const INIT_RUNNING: &str = vmm_shared::markers::INIT_RUNNING;
/// What starts `vmmcall-init`'s line when the program has exited, before
/// the program and [`vmm_shared::markers::INIT_EXITED`] and the status.
pub const INIT_EXITED: &str = vmm_shared::markers::INIT;

/// When the program's first line appeared: the first console line after
/// [`INIT_RUNNING`] that is neither the kernel's (`[ ...`) nor the VMM's
/// (`vmm: `).
pub fn first_program_line(console: &[String], times: &[Duration]) -> Option<Duration> {
    let start = console.iter().position(|l| l.contains(INIT_RUNNING))?;
    console
        .iter()
        .zip(times)
        .skip(start + 1)
        .find(|(l, _)| !l.starts_with('[') && !l.starts_with("vmm: ") && !l.is_empty())
        .map(|(_, t)| *t)
}

/// The status in `vmmcall-init: PROGRAM exited with status N`.
pub fn init_status(console: &[String]) -> Option<i64> {
    console.iter().rev().find_map(|l| {
        let rest = l.strip_prefix(INIT_EXITED)?;
        let (_, n) = rest.rsplit_once(vmm_shared::markers::INIT_EXITED)?;
        n.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_timing_and_status() {
        let lines: Vec<String> = [
            "vmm: vmm-core starting",
            "[    1.0] Run /init as init process",
            "vmmcall-init: running /bin/hello",
            "[    1.1] random kernel line",
            "vmm: [INFO] something",
            "hello: vmmcall VMM present",
            "vmmcall-init: /bin/hello exited with status 3",
        ]
        .map(String::from)
        .to_vec();
        let times: Vec<Duration> = (0..lines.len() as u64).map(Duration::from_secs).collect();
        assert_eq!(
            first_program_line(&lines, &times),
            Some(Duration::from_secs(5))
        );
        assert_eq!(first_program_line(&lines[..3], &times), None);
        assert_eq!(init_status(&lines), Some(3));
        assert_eq!(init_status(&lines[..6]), None);
    }

    #[test]
    fn run_dirs_are_locked_per_process() {
        let dir = std::env::temp_dir().join(format!("xtask-lock-{}", std::process::id()));
        let run = dir.join("hello-qemu-svm");
        let held = lock_run_dir(&run).unwrap();
        // A second open file description of the same lock cannot take it.
        let other = std::fs::OpenOptions::new()
            .write(true)
            .open(run.with_extension("lock"))
            .unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(held);
        assert!(other.try_lock().is_ok(), "released with the guard");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shell_words_quotes() {
        let mut c = Command::new("qemu");
        c.args(["-a", "b c", "", "it's"]);
        assert_eq!(shell_words(&c), "qemu -a 'b c' '' 'it'\\''s'");
    }
}
