//! Command-line parsing. Hand-written (a dozen options) to keep xtask free of
//! dependencies beyond anyhow and the root `Cargo.lock` untouched; why not
//! `lexopt`: docs/DECISIONS.md, "Hand-written code where a crate exists".

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::platform::{Accel, Cpu, CpuChoice, Emulator, Machine, MAX_CPUS};

/// The usage text.
pub const USAGE: &str = "\
cargo xtask: build, boot and test the vmmcall example images

USAGE:
    cargo xtask build [EXAMPLE]
        Build the VMM and guest images of EXAMPLE (default: every example)
        into examples/target/{vmm,guest}.

    cargo xtask run EXAMPLE [--emulator qemu|bochs] [--cpu amd|intel]
                            [--accel tcg|kvm] [--cpus N] [--timeout SECS]
        Build EXAMPLE and boot it, streaming the serial console. Defaults:
        qemu, amd, tcg, 1 CPU (QEMU's TCG has no Intel VMX: use --emulator
        bochs --cpu intel). --cpus N (1 to 8): a machine of N CPUs, one
        vCPU on each (docs/ABI.md, \"Several vCPUs\"). Exit status 0 only if
        the run succeeded.

    cargo xtask linux EXAMPLE [--emulator qemu|bochs] [--cpu amd|intel]
                              [--accel tcg|kvm] [--kernel BZIMAGE]
                              [--cpus N] [--timeout SECS] [--compare]
                              [-- PROGRAM [ARGS...]]
        Boot EXAMPLE's VMM with an unmodified Linux kernel as its guest
        (Debian's linux-image-cloud-amd64, fetched with apt-get download
        into target/linux-kernel, or --kernel BZIMAGE) and run, from the
        guest's /init, the example's Linux program (examples/NAME/linux) or
        PROGRAM with ARGS: a static x86-64 Linux executable on the host, or
        a tool already in the guest's /bin. Exit status: the program's.
        Prints the time to the program's first line; --compare also boots
        the same kernel and initramfs without the VMM and prints the ratio.

    cargo xtask test [--host-only | --skip-host] [--filter TEXT]
                     [--platform NAME]... [--jobs N] [--timeout SECS]
        1. cargo test --workspace on the host, cargo fmt and clippy, and
           cargo package of the published crates,
        2. build the examples,
        3. boot every example on every platform (qemu-svm, bochs-vmx,
           bochs-svm), honouring `skip:` lines of examples/NAME/expect.txt,
        4. print a result table; exit status 0 only if nothing failed.
        --host-only    only step 1          --skip-host   skip step 1
        --filter TEXT  examples whose name contains TEXT (repeatable)
        --platform P   only platform P (repeatable)
        --jobs N       emulator runs at once (default: 2, or 1 on one core)
        --timeout S    per-run timeout (default: expect.txt `timeout:`, else 60)

    cargo xtask bench [--platform NAME]... [--skip-vm | --skip-host] [--skip-linux]
        Measure (docs/BENCHMARKS.md): examples/bench on each platform, one
        at a time (framework hypercall vs raw exit, RDTSC); Linux booted
        under the bench VMM on each platform, its ring-3 program timing a
        hypercall against a CPUID exit and getpid() (--skip-linux: not;
        about 30 s per Bochs boot); the criterion benches of vmmcall
        (quick configuration); instructions per call under callgrind if
        valgrind is installed. Prints tables,
        `bench <platform>: framework/raw = <ratio>` per platform and
        `bench linux-<platform>: hypercall/cpuid = R, hypercall/syscall = S`.

    cargo xtask header [--check]
        Write the C headers generated from the interface declarations
        (vmmcall::interface!: examples/interface/c/demo.h, demo_v1.h) from
        their C_HEADER; --check only compares (the host tests do too).

    cargo xtask fuzz [--cases N] [--minutes M] [--filter TEXT]... [--seed S]
        The fuzz targets (property tests against reference models: name
        reader, marshalling, dispatch, page walk, VMX/SVM exit decoding) in
        release mode: N cases per round (default 20000), one round per
        target, or rounds with fresh seeds until M minutes are used. Prints
        cases and time per target; exit status 0 only if none failed.

Each run passes a fresh secret to the VMM (`verdict=SECRET` on its command
line). A run succeeds only if exactly one console line ends with the VMM's
`[verdict SECRET]` and says `vmm: guest exited with status 0`, no other
line claims a verdict (the guest shares the console: such a line is
forged), the emulator stopped on the VMM's request (QEMU exit code 33;
Bochs Shutdown port after the VMM's `vmm: verdict pass SECRET` log line),
no `vmm: PANIC`/`vmm: guest stopped: unhandled exit` appeared, and every
line of examples/NAME/expect.txt appeared. With `outcome: stopped` in
expect.txt (escape attempts), the VMM's verdict must instead be `vmm: guest
stopped: REASON` with each `stopped:` text in REASON, QEMU exits with 35
(Bochs: `fail`); `outcome: exited N` wants status N.
";

/// `cargo xtask run` options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunArgs {
    /// The example name.
    pub example: String,
    /// The emulator.
    pub emulator: Emulator,
    /// The CPU, if given.
    pub cpu: Option<Cpu>,
    /// The accelerator, if given.
    pub accel: Option<Accel>,
    /// Timeout override.
    pub timeout: Option<Duration>,
    /// CPUs of the machine (`--cpus`, default 1).
    pub cpus: u8,
}

/// Parses `--cpus N`: 1 to [`MAX_CPUS`].
pub fn parse_cpus(v: &str) -> Result<u8> {
    v.parse::<u8>()
        .ok()
        .filter(|n| (1..=MAX_CPUS).contains(n))
        .with_context(|| format!("--cpus wants a number from 1 to {MAX_CPUS}, got `{v}`"))
}

/// `cargo xtask test` options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestArgs {
    /// Only the host tests.
    pub host_only: bool,
    /// No host tests.
    pub skip_host: bool,
    /// Substrings of example names to keep (empty: all).
    pub filters: Vec<String>,
    /// Platforms to keep (empty: the whole matrix).
    pub platforms: Vec<Machine>,
    /// Parallel emulator runs.
    pub jobs: Option<usize>,
    /// Timeout override.
    pub timeout: Option<Duration>,
}

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cli {
    /// `build [EXAMPLE]`.
    Build(Option<String>),
    /// `run ...`.
    Run(RunArgs),
    /// `linux ...`.
    Linux(crate::linux_run::LinuxArgs),
    /// `test ...`.
    Test(TestArgs),
    /// `bench ...`.
    Bench(crate::bench::BenchArgs),
    /// `fuzz ...`.
    Fuzz(crate::fuzz::FuzzArgs),
    /// `header [--check]`.
    Header {
        /// Only compare.
        check: bool,
    },
    /// `help`, `--help`, `-h` or nothing.
    Help,
}

/// Splits `--name=value` / `--name value` options from positionals.
struct Args {
    items: std::collections::VecDeque<String>,
}

impl Args {
    fn next(&mut self) -> Option<String> {
        self.items.pop_front()
    }

    /// The value of option `name` whose flag text was `flag`.
    fn value(&mut self, flag: &str, name: &str) -> Result<String> {
        if let Some((_, v)) = flag.split_once('=') {
            return Ok(v.to_owned());
        }
        match self.next() {
            Some(v) if !v.starts_with("--") => Ok(v),
            _ => bail!("{name} needs a value"),
        }
    }
}

fn option_name(arg: &str) -> &str {
    arg.split_once('=').map_or(arg, |(n, _)| n)
}

fn parse_timeout(v: &str) -> Result<Duration> {
    let secs: u64 = v
        .parse()
        .with_context(|| format!("--timeout wants whole seconds, got `{v}`"))?;
    if secs == 0 {
        bail!("--timeout must be at least 1 second");
    }
    Ok(Duration::from_secs(secs))
}

/// Parses the arguments after `cargo xtask`.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Cli> {
    let mut args = Args {
        items: args.into_iter().collect(),
    };
    let Some(command) = args.next() else {
        return Ok(Cli::Help);
    };
    match command.as_str() {
        "help" | "--help" | "-h" => Ok(Cli::Help),
        "build" => {
            let mut example = None;
            while let Some(arg) = args.next() {
                match arg.as_str() {
                    "--help" | "-h" => return Ok(Cli::Help),
                    a if a.starts_with('-') => bail!("unknown option `{a}` for build"),
                    _ if example.is_some() => bail!("build takes at most one example"),
                    _ => example = Some(arg),
                }
            }
            Ok(Cli::Build(example))
        }
        "run" => {
            let mut example = None;
            let mut emulator = Emulator::Qemu;
            let mut cpu = None;
            let mut accel = None;
            let mut timeout = None;
            let mut cpus = 1;
            while let Some(arg) = args.next() {
                match option_name(&arg) {
                    "--help" | "-h" => return Ok(Cli::Help),
                    "--cpus" => cpus = parse_cpus(&args.value(&arg, "--cpus")?)?,
                    "--emulator" => emulator = Emulator::parse(&args.value(&arg, "--emulator")?)?,
                    "--cpu" => cpu = Some(Cpu::parse(&args.value(&arg, "--cpu")?)?),
                    "--accel" => accel = Some(Accel::parse(&args.value(&arg, "--accel")?)?),
                    "--timeout" => timeout = Some(parse_timeout(&args.value(&arg, "--timeout")?)?),
                    a if a.starts_with('-') => bail!("unknown option `{a}` for run"),
                    _ if example.is_some() => bail!("run takes exactly one example"),
                    _ => example = Some(arg),
                }
            }
            let Some(example) = example else {
                bail!("run needs an example name: cargo xtask run EXAMPLE");
            };
            Ok(Cli::Run(RunArgs {
                example,
                emulator,
                cpu,
                accel,
                timeout,
                cpus,
            }))
        }
        "linux" => {
            let mut example = None;
            let mut l = crate::linux_run::LinuxArgs {
                example: String::new(),
                emulator: Emulator::Qemu,
                cpu: None,
                accel: None,
                kernel: None,
                timeout: None,
                compare: false,
                program: Vec::new(),
                cpus: 1,
            };
            while let Some(arg) = args.next() {
                match option_name(&arg) {
                    "--" => {
                        l.program = args.items.drain(..).collect();
                        if l.program.is_empty() {
                            bail!("`--` must be followed by PROGRAM [ARGS...]");
                        }
                    }
                    "--help" | "-h" => return Ok(Cli::Help),
                    "--emulator" => l.emulator = Emulator::parse(&args.value(&arg, "--emulator")?)?,
                    "--cpu" => l.cpu = Some(Cpu::parse(&args.value(&arg, "--cpu")?)?),
                    "--accel" => l.accel = Some(Accel::parse(&args.value(&arg, "--accel")?)?),
                    "--kernel" => l.kernel = Some(args.value(&arg, "--kernel")?.into()),
                    "--timeout" => {
                        l.timeout = Some(parse_timeout(&args.value(&arg, "--timeout")?)?)
                    }
                    "--compare" => l.compare = true,
                    "--cpus" => l.cpus = parse_cpus(&args.value(&arg, "--cpus")?)?,
                    a if a.starts_with('-') => bail!("unknown option `{a}` for linux"),
                    _ if example.is_some() => bail!(
                        "linux takes one example; put the program after `--`: \
                         cargo xtask linux EXAMPLE -- PROGRAM [ARGS...]"
                    ),
                    _ => example = Some(arg),
                }
            }
            let Some(example) = example else {
                bail!("linux needs an example name: cargo xtask linux EXAMPLE");
            };
            l.example = example;
            Ok(Cli::Linux(l))
        }
        "test" => {
            let mut t = TestArgs::default();
            while let Some(arg) = args.next() {
                match option_name(&arg) {
                    "--help" | "-h" => return Ok(Cli::Help),
                    "--host-only" => t.host_only = true,
                    "--skip-host" => t.skip_host = true,
                    "--filter" => t.filters.push(args.value(&arg, "--filter")?),
                    "--platform" => {
                        let name = args.value(&arg, "--platform")?;
                        let m = Machine::MATRIX
                            .into_iter()
                            .find(|m| m.name() == name)
                            .with_context(|| {
                                format!(
                                    "unknown platform `{name}` (platforms: {})",
                                    Machine::matrix_names()
                                )
                            })?;
                        t.platforms.push(m);
                    }
                    "--jobs" => {
                        let v = args.value(&arg, "--jobs")?;
                        let n: usize = v.parse().ok().filter(|n| *n > 0).with_context(|| {
                            format!("--jobs wants a positive number, got `{v}`")
                        })?;
                        t.jobs = Some(n);
                    }
                    "--timeout" => {
                        t.timeout = Some(parse_timeout(&args.value(&arg, "--timeout")?)?)
                    }
                    a => bail!("unknown argument `{a}` for test"),
                }
            }
            if t.host_only && t.skip_host {
                bail!("--host-only and --skip-host exclude each other");
            }
            Ok(Cli::Test(t))
        }
        "bench" => {
            let rest: Vec<String> = args.items.drain(..).collect();
            if rest.iter().any(|a| a == "--help" || a == "-h") {
                return Ok(Cli::Help);
            }
            Ok(Cli::Bench(crate::bench::BenchArgs::parse(rest)?))
        }
        "fuzz" => {
            let rest: Vec<String> = args.items.drain(..).collect();
            if rest.iter().any(|a| a == "--help" || a == "-h") {
                return Ok(Cli::Help);
            }
            Ok(Cli::Fuzz(crate::fuzz::FuzzArgs::parse(rest)?))
        }
        "header" => {
            let mut check = false;
            while let Some(arg) = args.items.pop_front() {
                match arg.as_str() {
                    "--check" => check = true,
                    "--help" | "-h" => return Ok(Cli::Help),
                    a => bail!("unknown argument `{a}` for header"),
                }
            }
            Ok(Cli::Header { check })
        }
        other => {
            bail!(
                "unknown command `{other}` (expected build, run, linux, test, bench, fuzz, header or help)"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Cli> {
        parse(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn run_defaults_and_options() {
        assert_eq!(
            p("run hello").unwrap(),
            Cli::Run(RunArgs {
                example: "hello".into(),
                emulator: Emulator::Qemu,
                cpu: None,
                accel: None,
                timeout: None,
                cpus: 1,
            })
        );
        assert_eq!(
            p("run --emulator=bochs hello --cpu intel --timeout 9").unwrap(),
            Cli::Run(RunArgs {
                example: "hello".into(),
                emulator: Emulator::Bochs,
                cpu: Some(Cpu::Intel),
                accel: None,
                timeout: Some(Duration::from_secs(9)),
                cpus: 1,
            })
        );
        assert!(p("run").is_err());
        assert!(p("run a b").is_err());
        assert!(p("run a --cpu").is_err());
        assert_eq!(
            p("run a --cpus 4")
                .map(|c| match c {
                    Cli::Run(r) => r.cpus,
                    _ => 0,
                })
                .unwrap(),
            4
        );
        for bad in ["0", "9", "x", "-1"] {
            assert!(p(&format!("run a --cpus {bad}")).is_err(), "{bad}");
        }
        assert!(p("run a --emulator vbox").is_err());
        assert!(p("run a --frobnicate").is_err());
    }

    #[test]
    fn test_options() {
        let Cli::Test(t) = p("test --skip-host --filter he --platform bochs-vmx --jobs 1").unwrap()
        else {
            panic!()
        };
        assert!(t.skip_host && !t.host_only);
        assert_eq!(t.filters, vec!["he"]);
        assert_eq!(t.platforms, vec![Machine::BOCHS_VMX]);
        assert_eq!(t.jobs, Some(1));
        assert!(p("test --platform qemu-vmx").is_err());
        assert!(p("test --jobs 0").is_err());
        assert!(p("test --host-only --skip-host").is_err());
    }

    #[test]
    fn linux_options_and_program() {
        let Cli::Linux(l) =
            p("linux hello --emulator bochs --cpu intel --compare -- /bin/true --x y").unwrap()
        else {
            panic!()
        };
        assert_eq!(l.example, "hello");
        assert_eq!(
            (l.emulator, l.cpu, l.compare),
            (Emulator::Bochs, Some(Cpu::Intel), true)
        );
        assert_eq!(l.program, vec!["/bin/true", "--x", "y"]);
        let Cli::Linux(l) = p("linux hello --kernel /k").unwrap() else {
            panic!()
        };
        assert_eq!(l.kernel.as_deref(), Some(std::path::Path::new("/k")));
        assert!(l.program.is_empty() && !l.compare);
        assert!(p("linux").is_err());
        assert!(p("linux hello --").is_err());
        assert!(p("linux hello extra").is_err());
        assert!(p("linux hello --frob").is_err());
    }

    #[test]
    fn build_and_help() {
        assert_eq!(p("build").unwrap(), Cli::Build(None));
        assert_eq!(p("build hello").unwrap(), Cli::Build(Some("hello".into())));
        assert!(p("build a b").is_err());
        assert_eq!(p("").unwrap(), Cli::Help);
        assert_eq!(p("--help").unwrap(), Cli::Help);
        assert!(p("frob").is_err());
    }
}
