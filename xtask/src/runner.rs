//! Runs an emulator process with a timeout while streaming its serial
//! console live, line by line, and collecting it for the verdict.
//!
//! The console comes either from the process's stdout (QEMU `-serial stdio`)
//! or from a file the emulator writes (Bochs `com1: mode=file`), which is
//! tailed while the process runs.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::ui::{self, LineSplitter};

/// Where the guest-visible serial console appears.
pub enum ConsoleSource {
    /// The process's stdout; its stderr is streamed separately.
    Stdout,
    /// A file the emulator writes. The process's stdout and stderr go to
    /// `output` instead of the terminal.
    File {
        /// The console file to tail.
        console: PathBuf,
        /// Where the emulator's own stdout and stderr go.
        output: PathBuf,
    },
}

/// One emulator run to perform.
pub struct Launch {
    /// The command; stdin is always /dev/null.
    pub command: Command,
    /// Where the console appears.
    pub console: ConsoleSource,
    /// Kill the emulator after this long.
    pub timeout: Duration,
    /// Printed before each console line.
    pub prefix: String,
    /// Printed before each line the emulator writes to stderr
    /// ([`ConsoleSource::Stdout`] only).
    pub stderr_prefix: String,
}

/// How the emulator process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal (not by us).
    Signal(i32),
    /// We killed it when the timeout expired.
    TimedOut,
}

/// What a finished run produced.
pub struct Finished {
    /// Every console line, in order.
    pub console: Vec<String>,
    /// When each console line arrived, from the emulator's start.
    pub times: Vec<Duration>,
    /// The emulator's stderr lines ([`ConsoleSource::Stdout`] only).
    pub stderr: Vec<String>,
    /// How the process ended.
    pub exit: Exit,
    /// Wall-clock time from start to exit.
    pub elapsed: Duration,
}

fn print_line(prefix: &str, line: &str) {
    // One println! call takes the stdout lock once, so lines of parallel
    // runs never interleave mid-line.
    println!("{prefix}{line}");
}

/// Lines and their arrival times.
type Timed = (Vec<String>, Vec<Duration>);

fn stream_reader(
    reader: impl Read + Send + 'static,
    prefix: String,
    start: Instant,
) -> thread::JoinHandle<Timed> {
    thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut lines = Vec::new();
        let mut times = Vec::new();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let raw = buf.strip_suffix(b"\n").unwrap_or(&buf);
                    let line = ui::clean_line(raw);
                    print_line(&prefix, &line);
                    lines.push(line);
                    times.push(start.elapsed());
                }
            }
        }
        (lines, times)
    })
}

fn tail_file(
    path: PathBuf,
    prefix: String,
    done: Arc<AtomicBool>,
    start: Instant,
) -> thread::JoinHandle<Timed> {
    thread::spawn(move || {
        let mut file: Option<File> = None;
        let mut splitter = LineSplitter::default();
        let mut lines = Vec::new();
        let mut times = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            // Read `done` before draining: once it is set the process has
            // exited, so this last drain sees everything it wrote.
            let finished = done.load(Ordering::SeqCst);
            if file.is_none() {
                file = File::open(&path).ok();
            }
            if let Some(f) = file.as_mut() {
                while let Ok(n) = f.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    for line in splitter.push(&buf[..n]) {
                        print_line(&prefix, &line);
                        lines.push(line);
                        times.push(start.elapsed());
                    }
                }
            }
            if finished {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        if let Some(line) = splitter.finish() {
            print_line(&prefix, &line);
            lines.push(line);
            times.push(start.elapsed());
        }
        (lines, times)
    })
}

fn wait_with_timeout(child: &mut Child, timeout: Duration, start: Instant) -> Result<Exit> {
    loop {
        let status = match child.try_wait() {
            Ok(status) => status,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e).context("waiting for the emulator");
            }
        };
        if let Some(status) = status {
            return Ok(match (status.code(), status.signal()) {
                (Some(code), _) => Exit::Code(code),
                (None, Some(signal)) => Exit::Signal(signal),
                (None, None) => Exit::Code(-1),
            });
        }
        if start.elapsed() >= timeout {
            // Already-exited races are harmless: kill then reports an error
            // we do not need.
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Exit::TimedOut);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `launch` to completion or timeout.
pub fn run(launch: Launch) -> Result<Finished> {
    let Launch {
        mut command,
        console,
        timeout,
        prefix,
        stderr_prefix,
    } = launch;
    command.stdin(Stdio::null());
    let program = command.get_program().to_string_lossy().into_owned();
    match console {
        ConsoleSource::Stdout => {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            let start = Instant::now();
            let mut child = command
                .spawn()
                .with_context(|| format!("starting {program}"))?;
            let out = stream_reader(child.stdout.take().expect("piped stdout"), prefix, start);
            let err = stream_reader(
                child.stderr.take().expect("piped stderr"),
                stderr_prefix,
                start,
            );
            let exit = wait_with_timeout(&mut child, timeout, start)?;
            let elapsed = start.elapsed();
            let (console, times) = out.join().expect("console reader panicked");
            let (stderr, _) = err.join().expect("stderr reader panicked");
            Ok(Finished {
                console,
                times,
                stderr,
                exit,
                elapsed,
            })
        }
        ConsoleSource::File {
            console: console_path,
            output,
        } => {
            let out =
                File::create(&output).with_context(|| format!("creating {}", output.display()))?;
            let err = out.try_clone().context("duplicating a file handle")?;
            command.stdout(out).stderr(err);
            // A console left over from an earlier run must not be shown.
            match std::fs::remove_file(&console_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("removing {}", console_path.display()))
                }
            }
            let done = Arc::new(AtomicBool::new(false));
            let start = Instant::now();
            let mut child = command
                .spawn()
                .with_context(|| format!("starting {program}"))?;
            let tail = tail_file(console_path, prefix, done.clone(), start);
            let exit = wait_with_timeout(&mut child, timeout, start);
            let elapsed = start.elapsed();
            done.store(true, Ordering::SeqCst);
            let (console, times) = tail.join().expect("console tail panicked");
            Ok(Finished {
                console,
                times,
                stderr: Vec::new(),
                exit: exit?,
                elapsed,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn stdout_console_and_exit_code() {
        let f = run(Launch {
            command: sh("printf 'a\\r\\nb\\n'; echo oops >&2; printf tail; exit 33"),
            console: ConsoleSource::Stdout,
            timeout: Duration::from_secs(10),
            prefix: "  test | ".into(),
            stderr_prefix: "  test ! ".into(),
        })
        .unwrap();
        assert_eq!(f.console, vec!["a", "b", "tail"]);
        assert_eq!(f.stderr, vec!["oops"]);
        assert_eq!(f.exit, Exit::Code(33));
    }

    #[test]
    fn timeout_kills() {
        let f = run(Launch {
            command: sh("echo started; exec sleep 30"),
            console: ConsoleSource::Stdout,
            timeout: Duration::from_millis(300),
            prefix: String::new(),
            stderr_prefix: String::new(),
        })
        .unwrap();
        assert_eq!(f.exit, Exit::TimedOut);
        assert_eq!(f.console, vec!["started"]);
        assert!(f.elapsed < Duration::from_secs(10));
    }

    #[test]
    fn file_console_is_tailed() {
        let dir = std::env::temp_dir().join(format!("xtask-runner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let console = dir.join("console.txt");
        std::fs::write(&console, "stale\n").unwrap();
        let script = format!(
            "echo noise; printf 'one\\n' > {c}; sleep 0.2; printf 'two\\nthr' >> {c}; \
             sleep 0.1; printf 'ee' >> {c}; exit 1",
            c = console.display()
        );
        let f = run(Launch {
            command: sh(&script),
            console: ConsoleSource::File {
                console: console.clone(),
                output: dir.join("out.txt"),
            },
            timeout: Duration::from_secs(10),
            prefix: String::new(),
            stderr_prefix: String::new(),
        })
        .unwrap();
        assert_eq!(f.console, vec!["one", "two", "three"]);
        assert_eq!(f.times.len(), 3);
        assert!(f.times[0] <= f.times[1] && f.times[1] <= f.times[2]);
        assert!(f.times[1] >= Duration::from_millis(150), "{:?}", f.times);
        assert_eq!(f.exit, Exit::Code(1));
        assert_eq!(
            std::fs::read_to_string(dir.join("out.txt")).unwrap(),
            "noise\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
