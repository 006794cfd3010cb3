//! `cargo xtask bench`: what a hypercall costs, in the VM and on the host.
//!
//! 1. **In the VM**: boots `examples/bench` on each platform of the matrix,
//!    one at a time (never two emulators at once: they would slow each
//!    other), and reads the figures its guest prints on the console
//!    (`bench: KIND median=M p99=P ...`, `bench: framework/raw = R`). A
//!    platform that fails shows as a failed row; the others still run.
//! 2. **From a Linux process**: boots Linux under the bench VMM on each
//!    platform, one at a time, and reads what `examples/bench/linux` prints
//!    from ring 3 (`bench-linux: KIND median=M p99=P`,
//!    `bench-linux: hypercall/cpuid = R`, `... hypercall/syscall = S`).
//! 3. **On the host**: the criterion benches of `vmmcall` (dispatch, name
//!    lookup at 10 / 1 000 / 100 000 names against a linear `strcmp` table,
//!    marshalling) in a quick configuration, read back from criterion's
//!    `estimates.json` files.
//! 4. **Instructions per call**: `vmmcall/examples/dispatch_count` under
//!    callgrind with `N` and `2N` operations; `(Ir(2N) - Ir(N)) / N` is
//!    exact and independent of set-up. Skipped if valgrind is missing.
//!
//! Then it prints one table and one line per platform of the form
//! `bench <platform>: framework/raw = <ratio>`, one per platform that
//! boots Linux of the form `bench linux-<platform>: hypercall/cpuid = R,
//! hypercall/syscall = S`, and checks the targets of `docs/BENCHMARKS.md`
//! ([`TARGETS`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cargo::cargo;
use crate::expect::Expectations;
use crate::images;
use crate::linux_run;
use crate::paths::Layout;
use crate::platform::Machine;
use crate::session::{self, Boot, DEFAULT_TIMEOUT};
use crate::setup;
use crate::ui;
use crate::verdict::Verdict;

/// The example that measures in the VM.
const EXAMPLE: &str = "bench";
/// The in-VM measurements, in the guest's order.
const VM_KINDS: [&str; 8] = [
    "framework",
    "raw",
    "direct",
    "lookup",
    "pages",
    "timer",
    "typed",
    "plain",
];
/// The Linux program's measurements, in its order.
const LINUX_KINDS: [&str; 3] = ["hypercall", "cpuid", "syscall"];
/// Criterion options for a quick run (the whole command stays well under
/// ten minutes on two cores).
const CRITERION_QUICK: [&str; 7] = [
    "--warm-up-time",
    "0.5",
    "--measurement-time",
    "1.5",
    "--sample-size",
    "50",
    "--noplot",
];
/// The criterion ids shown in the host table, in order.
const HOST_IDS: [&str; 6] = [
    "dispatch/null",
    "dispatch/enosys",
    "dispatch/get_vmmcall_number",
    "marshal/from_reg_x5",
    "marshal/dispatch_null",
    "marshal/dispatch_narrow5",
];
/// The lookup tables of `vmmcall/benches/lookup.rs`: the registry, then
/// the linear `strcmp` table it is compared with.
const LOOKUP_TABLES: [&str; 2] = ["registry", "linear_strcmp"];
/// The host benches (`vmmcall/benches/*.rs`).
const HOST_BENCHES: [&str; 3] = ["dispatch", "marshal", "lookup"];
/// Lookup sizes of `vmmcall/benches/lookup.rs`.
const LOOKUP_SIZES: [u32; 3] = [10, 1_000, 100_000];
/// Operations per callgrind run (and twice as many in the second run).
const CALLGRIND_N: u64 = 10_000;

/// `cargo xtask bench` options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BenchArgs {
    /// Platforms to run on (empty: the whole matrix).
    pub platforms: Vec<Machine>,
    /// Skip the emulator runs.
    pub skip_vm: bool,
    /// Skip the host benches and callgrind.
    pub skip_host: bool,
    /// Skip the Linux boots (part of the VM figures).
    pub skip_linux: bool,
}

impl BenchArgs {
    /// Parses the arguments after `cargo xtask bench`.
    pub fn parse(args: Vec<String>) -> Result<BenchArgs> {
        let mut b = BenchArgs::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (arg.clone(), None),
            };
            match name.as_str() {
                "--platform" => {
                    let Some(p) = inline.or_else(|| args.next()) else {
                        bail!("--platform needs a value");
                    };
                    let m = Machine::MATRIX
                        .into_iter()
                        .find(|m| m.name() == p)
                        .with_context(|| {
                            format!(
                                "unknown platform `{p}` (platforms: {})",
                                Machine::matrix_names()
                            )
                        })?;
                    b.platforms.push(m);
                }
                "--skip-vm" => b.skip_vm = true,
                "--skip-host" => b.skip_host = true,
                "--skip-linux" => b.skip_linux = true,
                a => bail!("unknown argument `{a}` for bench"),
            }
        }
        if b.skip_vm && b.skip_host {
            bail!("--skip-vm and --skip-host leave nothing to measure");
        }
        Ok(b)
    }
}

/// One measurement printed by the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmFigure {
    /// `framework`, `raw`, ...
    pub kind: String,
    /// Median cycles per call.
    pub median: u64,
    /// 99th percentile.
    pub p99: u64,
}

/// What one platform's console showed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmFigures {
    /// Measured iterations.
    pub iterations: Option<u64>,
    /// The measurements.
    pub figures: Vec<VmFigure>,
    /// The guest's `framework/raw` ratio, as printed.
    pub ratio: Option<String>,
    /// `smp4/smp1` from the run on 4 CPUs, as printed (`None`: not run or
    /// failed, with the reason in `smp_failure`).
    pub smp: Option<String>,
    /// Why the run on 4 CPUs gave no `smp4/smp1`.
    pub smp_failure: Option<String>,
    /// The long-call and batch ratios ([`LONG_RATIOS`]), as printed.
    pub long_ratios: Vec<(String, String)>,
    /// Steps of the longest exit of a long call, and its line.
    pub longest: Option<(u64, String)>,
}

/// The long-call and batch ratios the guest prints (issue 23), in order.
pub const LONG_RATIOS: [&str; 5] = [
    "batch32/single",
    "batch1/single",
    "batch32-phys/single",
    "batch1-phys/single",
    "stepped/unstepped",
];

impl VmFigures {
    fn get(&self, kind: &str) -> Option<&VmFigure> {
        self.figures.iter().find(|f| f.kind == kind)
    }
}

/// The value of `key=` in a line of `key=value` words.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// Parses the `bench:` lines of the guest's console.
pub fn parse_console(console: &str) -> VmFigures {
    let mut out = VmFigures::default();
    for line in console.lines() {
        let Some(rest) = line.find("bench: ").map(|i| &line[i + "bench: ".len()..]) else {
            continue;
        };
        if let Some(ratio) = rest.strip_prefix("framework/raw = ") {
            out.ratio = Some(ratio.trim().to_owned());
        } else if let Some(ratio) = rest.strip_prefix(SMP_RATIO) {
            out.smp = Some(ratio.trim().to_owned());
        } else if let Some((name, r)) = LONG_RATIOS
            .iter()
            .find_map(|n| Some((*n, rest.strip_prefix(*n)?.strip_prefix(" = ")?)))
        {
            out.long_ratios.push((name.to_owned(), r.trim().to_owned()));
        } else if let Some(tail) = rest.strip_prefix("longest exit of a long call = ") {
            let steps = tail
                .split(", ")
                .nth(1)
                .and_then(|w| w.split_whitespace().next())
                .and_then(|n| n.parse().ok());
            if let Some(steps) = steps {
                out.longest = Some((steps, tail.trim().to_owned()));
            }
        } else if rest.starts_with("iterations=") {
            out.iterations = field(rest, "iterations");
        } else if let Some((kind, tail)) = rest.split_once(' ') {
            if let (Some(median), Some(p99)) = (field(tail, "median"), field(tail, "p99")) {
                out.figures.push(VmFigure {
                    kind: kind.to_owned(),
                    median,
                    p99,
                });
            }
        }
    }
    out
}

/// What the Linux program printed on one platform.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinuxFigures {
    /// `hypercall`, `cpuid`, `syscall`.
    pub figures: Vec<VmFigure>,
    /// `hypercall/cpuid`, as printed.
    pub hypercall_cpuid: Option<String>,
    /// `hypercall/syscall`, as printed.
    pub hypercall_syscall: Option<String>,
}

impl LinuxFigures {
    fn get(&self, kind: &str) -> Option<&VmFigure> {
        self.figures.iter().find(|f| f.kind == kind)
    }
}

/// Parses the `bench-linux:` lines of a Linux run's console.
pub fn parse_linux_console(console: &str) -> LinuxFigures {
    const TAG: &str = "bench-linux: ";
    let mut out = LinuxFigures::default();
    for line in console.lines() {
        let Some(rest) = line.find(TAG).map(|i| &line[i + TAG.len()..]) else {
            continue;
        };
        if let Some(r) = rest.strip_prefix("hypercall/cpuid = ") {
            out.hypercall_cpuid = Some(r.trim().to_owned());
        } else if let Some(r) = rest.strip_prefix("hypercall/syscall = ") {
            out.hypercall_syscall = Some(r.trim().to_owned());
        } else if let Some((kind, tail)) = rest.split_once(' ') {
            if let (Some(median), Some(p99)) = (field(tail, "median"), field(tail, "p99")) {
                out.figures.push(VmFigure {
                    kind: kind.to_owned(),
                    median,
                    p99,
                });
            }
        }
    }
    out
}

/// The median point estimate (ns) in a criterion `estimates.json`.
pub fn criterion_median(json: &str) -> Option<f64> {
    let median = &json[json.find("\"median\":")?..];
    let value = &median[median.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = value.find([',', '}']).unwrap_or(value.len());
    value[..end].trim().parse().ok()
}

/// The `Collected : N` count in callgrind's stderr.
pub fn callgrind_collected(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|l| {
        l.split_once("Collected :")
            .and_then(|(_, n)| n.trim().parse().ok())
    })
}

/// Nanoseconds as text with a fitting unit.
fn ns(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.2} ms", v / 1_000_000.0)
    } else if v >= 1_000.0 {
        format!("{:.2} us", v / 1_000.0)
    } else {
        format!("{v:.1} ns")
    }
}

/// The outcome of one platform.
enum VmRow {
    Measured(VmFigures),
    Failed(String),
}

/// CPUs of the bench's second run, and the line it prints.
const SMP_CPUS: u8 = 4;
const SMP_RATIO: &str = "smp4/smp1 = ";

/// The bench example again on [`SMP_CPUS`] CPUs (`examples/bench/guest/
/// src/smp.rs`): its `smp4/smp1`, or why there is none.
fn run_smp(layout: &Layout, machine: Machine) -> std::result::Result<String, String> {
    let expected = Expectations::load(&layout.smp_expect_file(EXAMPLE, SMP_CPUS))
        .map_err(|e| format!("{e:#}"))?;
    let name = format!("{EXAMPLE}-cpus{SMP_CPUS}");
    let outcome = session::boot(&Boot {
        payload: session::example_payload(layout, EXAMPLE),
        layout,
        name: &name,
        machine: machine.with_cpus(SMP_CPUS),
        timeout: expected.timeout.unwrap_or(DEFAULT_TIMEOUT),
        expected: &expected,
        labelled: false,
    });
    let console = layout.console_file(&name, &machine.name());
    console_figures(outcome.verdict, &console, |text| parse_console(text).smp)
}

fn run_vm(layout: &Layout, platforms: &[Machine]) -> Vec<(Machine, VmRow)> {
    let mut rows = Vec::new();
    let expected = match Expectations::load(&layout.expect_file(EXAMPLE)) {
        Ok(e) => e,
        Err(e) => {
            let reason = format!("{e:#}");
            return platforms
                .iter()
                .map(|p| (*p, VmRow::Failed(reason.clone())))
                .collect();
        }
    };
    let build = images::build(layout, &[EXAMPLE.to_owned()]).map_err(|e| format!("{e:#}"));
    for &machine in platforms {
        if let Err(e) = &build {
            rows.push((machine, VmRow::Failed(format!("build failed: {e}"))));
            continue;
        }
        if let Err(e) = setup::ensure(&[machine.emulator.facts().toolset]) {
            rows.push((machine, VmRow::Failed(format!("{e:#}"))));
            continue;
        }
        let outcome = session::boot(&Boot {
            payload: session::example_payload(layout, EXAMPLE),
            layout,
            name: EXAMPLE,
            machine,
            timeout: expected.timeout.unwrap_or(DEFAULT_TIMEOUT),
            expected: &expected,
            labelled: false,
        });
        let console = layout.console_file(EXAMPLE, &machine.name());
        let row = match console_figures(outcome.verdict, &console, |text| {
            let f = parse_console(text);
            (f.ratio.is_some() && !f.figures.is_empty()).then_some(f)
        }) {
            Ok(mut f) => {
                match run_smp(layout, machine) {
                    Ok(r) => f.smp = Some(r),
                    Err(e) => f.smp_failure = Some(e),
                }
                VmRow::Measured(f)
            }
            Err(reason) => VmRow::Failed(reason),
        };
        rows.push((machine, row));
    }
    rows
}

/// The figures a run printed on its console, read back from `console`:
/// `parse` gives them, or `None` when some are missing. `Err` with the
/// reason when the run failed, the console cannot be read or the figures
/// are not there.
fn console_figures<F>(
    verdict: Verdict,
    console: &Path,
    parse: impl FnOnce(&str) -> Option<F>,
) -> std::result::Result<F, String> {
    if let Verdict::Fail(reasons) = verdict {
        return Err(reasons.join("; "));
    }
    let text = std::fs::read_to_string(console)
        .map_err(|e| format!("reading {}: {e}", console.display()))?;
    parse(&text).ok_or_else(|| format!("no figures in {}", console.display()))
}

/// The outcome of one platform's Linux boot.
enum LinuxRow {
    Measured(LinuxFigures),
    Failed(String),
}

/// Boot Linux under the bench VMM on each platform, one at a time, running
/// `examples/bench/linux` (as `cargo xtask linux bench` does).
fn run_linux(layout: &Layout, platforms: &[Machine]) -> Vec<(Machine, LinuxRow)> {
    let fail_all = |reason: String| {
        platforms
            .iter()
            .map(|p| (*p, LinuxRow::Failed(reason.clone())))
            .collect()
    };
    if let Err(e) = images::build(layout, &[EXAMPLE.to_owned()]) {
        return fail_all(format!("build failed: {e:#}"));
    }
    let prepared = match crate::linux::kernel(layout, None)
        .and_then(|k| linux_run::prepare(layout, EXAMPLE, &k, &[]))
    {
        Ok(p) => p,
        Err(e) => return fail_all(format!("{e:#}")),
    };
    let run_name = format!("{EXAMPLE}-linux");
    let mut rows = Vec::new();
    for &machine in platforms {
        if let Err(e) = setup::ensure(&[machine.emulator.facts().toolset]) {
            rows.push((machine, LinuxRow::Failed(format!("{e:#}"))));
            continue;
        }
        let timeout = prepared
            .expected
            .timeout
            .unwrap_or_else(|| machine.emulator.facts().linux_timeout);
        let outcome = session::boot(&linux_run::vmm_boot(
            layout, &run_name, EXAMPLE, machine, &prepared, timeout, false,
        ));
        let console = layout.console_file(&run_name, &machine.name());
        let row = match console_figures(outcome.verdict, &console, |text| {
            let f = parse_linux_console(text);
            (f.hypercall_cpuid.is_some() && f.hypercall_syscall.is_some()).then_some(f)
        }) {
            Ok(f) => LinuxRow::Measured(f),
            Err(reason) => LinuxRow::Failed(reason),
        };
        rows.push((machine, row));
    }
    rows
}

/// Criterion medians by bench id (`dispatch/null`, `lookup/registry/10`).
struct HostFigures {
    criterion_home: PathBuf,
}

impl HostFigures {
    fn median(&self, id: &str) -> Option<f64> {
        let path = self.criterion_home.join(id).join("new/estimates.json");
        criterion_median(&std::fs::read_to_string(path).ok()?)
    }
}

fn run_criterion(layout: &Layout) -> Result<HostFigures> {
    let criterion_home = layout.criterion_home();
    let mut cmd = cargo(&layout.root);
    cmd.env("CRITERION_HOME", &criterion_home)
        .args(["bench", "-p", "vmmcall"]);
    for b in HOST_BENCHES {
        cmd.args(["--bench", b]);
    }
    cmd.arg("--").args(CRITERION_QUICK);
    println!(
        "host benches: CRITERION_HOME={} cargo bench -p vmmcall --bench {} -- {}",
        criterion_home.display(),
        HOST_BENCHES.join(" --bench "),
        CRITERION_QUICK.join(" ")
    );
    let status = cmd.status().context("starting cargo bench")?;
    if !status.success() {
        bail!("cargo bench failed ({status})");
    }
    Ok(HostFigures { criterion_home })
}

/// Instructions per operation for each (label, op, toggle) of dispatch_count.
type Counts = Vec<(String, Result<f64, String>)>;

const COUNT_OPS: [(&str, &str, &str); 7] = [
    ("dispatch null", "null", "*dispatch_count::counted_dispatch"),
    (
        "dispatch null, whole Outcome returned",
        "null-outcome",
        "*dispatch_count::counted_outcome",
    ),
    (
        "dispatch narrow5",
        "narrow5",
        "*dispatch_count::counted_dispatch",
    ),
    (
        "dispatch enosys",
        "enosys",
        "*dispatch_count::counted_dispatch",
    ),
    (
        "lookup, 10 names",
        "lookup-10",
        "*dispatch_count::counted_lookup",
    ),
    (
        "lookup, 1000 names",
        "lookup-1000",
        "*dispatch_count::counted_lookup",
    ),
    (
        "lookup, 100000 names",
        "lookup-100000",
        "*dispatch_count::counted_lookup",
    ),
];

fn callgrind_once(binary: &Path, op: &str, toggle: &str, n: u64) -> Result<u64, String> {
    let out = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            &format!("--toggle-collect={toggle}"),
        ])
        .arg(binary)
        .args([op, &n.to_string()])
        .output()
        .map_err(|e| format!("starting valgrind: {e}"))?;
    if !out.status.success() {
        return Err(format!("valgrind {op} {n} failed ({})", out.status));
    }
    counted(&String::from_utf8_lossy(&out.stderr), toggle)
        .map_err(|e| format!("valgrind {op} {n}: {e}"))
}

/// The instructions callgrind collected inside `toggle`, from its stderr.
/// Zero is an error: the toggle named a function the binary does not
/// have (inlined or renamed), not a call that costs nothing.
fn counted(stderr: &str, toggle: &str) -> Result<u64, String> {
    match callgrind_collected(stderr) {
        None => Err("no `Collected :` line".to_owned()),
        Some(0) => Err(format!(
            "callgrind counted no instruction in {toggle}: is the function inlined or renamed?"
        )),
        Some(c) => Ok(c),
    }
}

fn run_callgrind(layout: &Layout) -> Result<Option<Counts>> {
    let have_valgrind = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_valgrind {
        return Ok(None);
    }
    let status = cargo(&layout.root)
        .args([
            "build",
            "--release",
            "-p",
            "vmmcall",
            "--example",
            "dispatch_count",
        ])
        .status()
        .context("starting cargo build")?;
    if !status.success() {
        bail!("building vmmcall/examples/dispatch_count failed ({status})");
    }
    let binary = layout
        .host_target_dir()
        .join("release/examples/dispatch_count");
    println!(
        "instructions per call: valgrind --tool=callgrind --callgrind-out-file=/dev/null \
         '--toggle-collect=FN' {} OP N, N = {} and {}; FN = {} (dispatch), {} (lookup)",
        binary.display(),
        CALLGRIND_N,
        2 * CALLGRIND_N,
        COUNT_OPS[0].2,
        COUNT_OPS[4].2
    );
    let mut counts = Vec::new();
    for (label, op, toggle) in COUNT_OPS {
        let per_call = callgrind_once(&binary, op, toggle, CALLGRIND_N).and_then(|a| {
            let b = callgrind_once(&binary, op, toggle, 2 * CALLGRIND_N)?;
            Ok(b.saturating_sub(a) as f64 / CALLGRIND_N as f64)
        });
        counts.push((label.to_owned(), per_call));
    }
    Ok(Some(counts))
}

/// How a target's figure is counted and shown.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Unit {
    /// A ratio of medians (`1.031`; the limit as `1.05`).
    Ratio,
    /// RDTSC ticks of an exact-ticks emulator (`12`).
    Ticks,
    /// Instructions per call from callgrind (`34.0`; the limit as `40`).
    Instructions,
    /// A growth factor (`1.18x`; the limit as `2`).
    Growth,
}

impl Unit {
    fn value(self, v: f64) -> String {
        match self {
            Unit::Ratio => format!("{v:.3}"),
            Unit::Ticks => format!("{v:.0}"),
            Unit::Instructions => format!("{v:.1}"),
            Unit::Growth => format!("{v:.2}x"),
        }
    }

    fn limit(self, v: f64) -> String {
        match self {
            Unit::Ratio => format!("{v:.2}"),
            Unit::Ticks | Unit::Instructions | Unit::Growth => format!("{v:.0}"),
        }
    }
}

/// What a target reads from the measurements.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Figure {
    /// The guest's `framework/raw` ratio on the platform.
    VmRatio,
    /// One of the guest's [`LONG_RATIOS`] on the platform.
    LongRatio(&'static str),
    /// Steps in the longest exit of a long call on the platform.
    LongestSteps,
    /// The median of the first kind minus the median of the second, in
    /// ticks, on the platform.
    VmDifference(&'static str, &'static str),
    /// `hypercall/cpuid` of the Linux program on the platform.
    LinuxRatio,
    /// callgrind's instructions for a null dispatch; 0 means callgrind
    /// counted nothing (the function was not found): a measuring error,
    /// not a fast dispatch.
    DispatchInstructions,
    /// Lookup median at 100000 names over 10 names.
    LookupGrowth,
}

/// Which platforms a group of targets is checked on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// One platform, measured or not.
    Platform(Machine),
    /// Every measured platform whose emulator has exact ticks
    /// ([`crate::platform::Facts::exact_ticks`]).
    ExactTicks,
    /// Every platform that booted the Linux program.
    Linux,
    /// The host: no platform.
    Host,
}

/// One target of `docs/BENCHMARKS.md`: `what` with `{max}` and
/// `{platform}` filled in, met when the figure is at most `max`.
struct Target {
    what: &'static str,
    figure: Figure,
    unit: Unit,
    max: f64,
}

/// The targets, in the order they are printed: each group on each
/// platform of its scope.
const TARGETS: [(Scope, &[Target]); 6] = [
    (
        Scope::Platform(Machine::QEMU_SVM),
        &[Target {
            what: "framework/raw <= {max} on {platform}",
            figure: Figure::VmRatio,
            unit: Unit::Ratio,
            max: 1.05,
        }],
    ),
    (
        Scope::ExactTicks,
        &[
            Target {
                what: "framework/raw <= {max} on {platform}",
                figure: Figure::VmRatio,
                unit: Unit::Ratio,
                max: 1.10,
            },
            Target {
                what: "VMM side over raw (direct - raw) <= {max} ticks on {platform}",
                figure: Figure::VmDifference("direct", "raw"),
                unit: Unit::Ticks,
                max: 30.0,
            },
            Target {
                what: "guest call site over inline asm (framework - direct) <= {max} ticks \
                       on {platform}",
                figure: Figure::VmDifference("framework", "direct"),
                unit: Unit::Ticks,
                max: 12.0,
            },
        ],
    ),
    (
        Scope::ExactTicks,
        &[Target {
            what: "a typed call costs no more than #[vmmcall] with the same parameters \
                   (typed - plain <= {max} ticks) on {platform}",
            figure: Figure::VmDifference("typed", "plain"),
            unit: Unit::Ticks,
            max: 0.0,
        }],
    ),
    (
        Scope::ExactTicks,
        &[
            Target {
                what: "a batch of 32 null calls, per entry, over one null call \
                       (batch32/single <= {max}) on {platform}",
                figure: Figure::LongRatio("batch32/single"),
                unit: Unit::Ratio,
                max: 0.15,
            },
            Target {
                what: "a batch of 1 over one null call (batch1/single <= {max}) on {platform}",
                figure: Figure::LongRatio("batch1/single"),
                unit: Unit::Ratio,
                max: 1.10,
            },
            Target {
                what: "the same, buffers by guest-physical address \
                       (batch32-phys/single <= {max}) on {platform}",
                figure: Figure::LongRatio("batch32-phys/single"),
                unit: Unit::Ratio,
                max: 0.15,
            },
            Target {
                what: "the same, buffers by guest-physical address \
                       (batch1-phys/single <= {max}) on {platform}",
                figure: Figure::LongRatio("batch1-phys/single"),
                unit: Unit::Ratio,
                max: 1.10,
            },
            Target {
                what: "a long call in steps over the same work in one exit \
                       (stepped/unstepped <= {max}) on {platform}",
                figure: Figure::LongRatio("stepped/unstepped"),
                unit: Unit::Ratio,
                max: 1.02,
            },
            Target {
                what: "the longest exit of a long call within the step budget \
                       (<= {max} steps) on {platform}",
                figure: Figure::LongestSteps,
                unit: Unit::Ticks,
                max: 256.0,
            },
        ],
    ),
    (
        Scope::Linux,
        &[Target {
            what: "hypercall/cpuid <= {max} from a Linux process on {platform}",
            figure: Figure::LinuxRatio,
            unit: Unit::Ratio,
            max: 1.10,
        }],
    ),
    (
        Scope::Host,
        &[
            Target {
                what: "host dispatch of a null hypercall <= {max} instructions",
                figure: Figure::DispatchInstructions,
                unit: Unit::Instructions,
                max: 40.0,
            },
            Target {
                what: "lookup with 100000 names within {max}x of 10 names",
                figure: Figure::LookupGrowth,
                unit: Unit::Growth,
                max: 2.0,
            },
        ],
    ),
];

impl Target {
    /// The target's line for `platform` (`None`: the host) with the
    /// figure measured, if any.
    fn line(&self, platform: Option<Machine>, value: Option<f64>) -> String {
        let what = self
            .what
            .replace("{max}", &self.unit.limit(self.max))
            .replace(
                "{platform}",
                &platform.map(|m| m.name()).unwrap_or_default(),
            );
        let counted = value.filter(|v| self.figure != Figure::DispatchInstructions || *v > 0.0);
        let verdict = match counted.map(|v| v <= self.max) {
            Some(true) => "met",
            Some(false) => "NOT met (see docs/BENCHMARKS.md)",
            None => "not measured",
        };
        let value = value.map_or("-".to_owned(), |v| self.unit.value(v));
        format!("  {what}: {value}: {verdict}")
    }
}

/// Everything the targets read.
struct Measured<'a> {
    vm: &'a [(Machine, VmRow)],
    linux: &'a [(Machine, Option<f64>)],
    dispatch_insns: Option<f64>,
    lookup_scaling: Option<f64>,
}

impl Measured<'_> {
    fn vm_figures(&self, machine: Machine) -> Option<&VmFigures> {
        self.vm.iter().find_map(|(m, row)| match row {
            VmRow::Measured(f) if *m == machine => Some(f),
            _ => None,
        })
    }

    /// The platforms a scope covers (`None`: the host).
    fn platforms(&self, scope: Scope) -> Vec<Option<Machine>> {
        match scope {
            Scope::Platform(m) => vec![Some(m)],
            Scope::ExactTicks => self
                .vm
                .iter()
                .filter(|(m, row)| {
                    matches!(row, VmRow::Measured(_)) && m.emulator.facts().exact_ticks
                })
                .map(|(m, _)| Some(*m))
                .collect(),
            Scope::Linux => self.linux.iter().map(|(m, _)| Some(*m)).collect(),
            Scope::Host => vec![None],
        }
    }

    fn value(&self, platform: Option<Machine>, target: &Target) -> Option<f64> {
        match (target.figure, platform) {
            (Figure::VmRatio, Some(m)) => self
                .vm_figures(m)?
                .ratio
                .as_deref()
                .and_then(|r| r.parse().ok()),
            (Figure::LongRatio(name), Some(m)) => self
                .vm_figures(m)?
                .long_ratios
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, r)| r.parse().ok()),
            (Figure::LongestSteps, Some(m)) => {
                self.vm_figures(m)?.longest.as_ref().map(|(s, _)| *s as f64)
            }
            (Figure::VmDifference(a, b), Some(m)) => {
                let f = self.vm_figures(m)?;
                let median = |k: &str| f.get(k).map(|x| x.median as i64);
                Some((median(a)? - median(b)?) as f64)
            }
            (Figure::LinuxRatio, Some(m)) => self
                .linux
                .iter()
                .find(|(l, _)| *l == m)
                .and_then(|(_, r)| *r),
            (Figure::DispatchInstructions, None) => self.dispatch_insns,
            (Figure::LookupGrowth, None) => self.lookup_scaling,
            _ => None,
        }
    }
}

/// Runs the bench command; `Ok(true)` if every part produced figures.
pub fn bench(layout: &Layout, args: &BenchArgs) -> Result<bool> {
    let start = Instant::now();
    let platforms = if args.platforms.is_empty() {
        Machine::MATRIX.to_vec()
    } else {
        args.platforms.clone()
    };
    let vm = if args.skip_vm {
        Vec::new()
    } else {
        run_vm(layout, &platforms)
    };
    let linux_started = Instant::now();
    let linux = if args.skip_vm || args.skip_linux {
        Vec::new()
    } else {
        run_linux(layout, &platforms)
    };
    let linux_time = linux_started.elapsed();
    let (host, counts) = if args.skip_host {
        (None, None)
    } else {
        let host = run_criterion(layout).map_err(|e| format!("{e:#}"));
        let counts = run_callgrind(layout).map_err(|e| format!("{e:#}"));
        (Some(host), Some(counts))
    };

    let mut ok = true;
    println!();
    println!("==== bench results ====");
    if !vm.is_empty() {
        let iterations = vm.iter().find_map(|(_, r)| match r {
            VmRow::Measured(f) => f.iterations,
            VmRow::Failed(_) => None,
        });
        println!(
            "in the VM: RDTSC ticks per call, median / p99 ({} interleaved iterations; examples/bench)",
            iterations.map_or("?".to_owned(), |n| n.to_string())
        );
        let mut rows = vec![std::iter::once("platform")
            .chain(VM_KINDS)
            .chain(["framework/raw"])
            .map(str::to_owned)
            .collect::<Vec<_>>()];
        for (machine, row) in &vm {
            let mut cells = vec![machine.name()];
            match row {
                VmRow::Measured(f) => {
                    for kind in VM_KINDS {
                        cells.push(
                            f.get(kind)
                                .map_or("-".to_owned(), |x| format!("{} / {}", x.median, x.p99)),
                        );
                    }
                    cells.push(f.ratio.clone().unwrap_or_default());
                }
                VmRow::Failed(_) => {
                    cells.extend(VM_KINDS.iter().map(|_| "-".to_owned()));
                    cells.push("FAILED".to_owned());
                }
            }
            rows.push(cells);
        }
        print!("{}", ui::table(&rows));
        for (machine, row) in &vm {
            match row {
                VmRow::Measured(f) => {
                    let ratio = f.ratio.clone().unwrap_or_default();
                    println!("bench {machine}: framework/raw = {ratio}");
                    match (&f.smp, &f.smp_failure) {
                        (Some(r), _) => {
                            let note = if machine.emulator.facts().exact_ticks {
                                ""
                            } else {
                                " (the host's clock, which single-threaded TCG shares among the vCPUs in turns: not a cost)"
                            };
                            println!("bench {machine}: smp4/smp1 = {r}{note}");
                        }
                        (None, reason) => {
                            ok = false;
                            println!(
                                "bench {machine}: smp4/smp1 = FAILED ({})",
                                reason.as_deref().unwrap_or("no figure")
                            );
                        }
                    }
                    for (name, r) in &f.long_ratios {
                        println!("bench {machine}: {name} = {r}");
                    }
                    if let Some((_, line)) = &f.longest {
                        println!("bench {machine}: longest exit of a long call = {line}");
                    }
                }
                VmRow::Failed(reason) => {
                    ok = false;
                    println!("bench {machine}: framework/raw = FAILED ({reason})");
                }
            }
        }
    }

    // Bochs counts emulated instructions: its ticks are exact, and the
    // targets on the differences are in ticks.
    let mut bochs: Vec<(Machine, &VmFigures)> = Vec::new();
    for (machine, row) in &vm {
        if let VmRow::Measured(f) = row {
            if machine.emulator.facts().exact_ticks {
                bochs.push((*machine, f));
            }
        }
    }
    if !bochs.is_empty() {
        for (machine, f) in &bochs {
            let m = |k: &str| f.get(k).map(|x| x.median as i64);
            if let (Some(fw), Some(raw), Some(direct)) = (m("framework"), m("raw"), m("direct")) {
                println!(
                    "bench {machine}: VMM side over raw (direct - raw) = {} ticks, guest call site \
                     over inline asm (framework - direct) = {} ticks",
                    direct - raw,
                    fw - direct
                );
            }
            if let (Some(typed), Some(plain)) = (m("typed"), m("plain")) {
                println!(
                    "bench {machine}: typed call (interface!) {typed} ticks, the same five \
                     parameters through #[vmmcall] {plain} ticks: typed - plain = {}",
                    typed - plain
                );
            }
        }
    }

    let mut linux_ratios: Vec<(Machine, Option<f64>)> = Vec::new();
    if !linux.is_empty() {
        println!();
        println!(
            "from a Linux process (ring 3): RDTSC ticks per call, median / p99 \
             (examples/bench/linux; {} boot{} in {})",
            linux.len(),
            if linux.len() == 1 { "" } else { "s" },
            ui::secs(linux_time)
        );
        let mut rows = vec![std::iter::once("platform")
            .chain(LINUX_KINDS)
            .chain(["hypercall/cpuid", "hypercall/syscall"])
            .map(str::to_owned)
            .collect::<Vec<_>>()];
        for (machine, row) in &linux {
            let mut cells = vec![format!("linux-{}", machine.name())];
            match row {
                LinuxRow::Measured(f) => {
                    for kind in LINUX_KINDS {
                        cells.push(
                            f.get(kind)
                                .map_or("-".to_owned(), |x| format!("{} / {}", x.median, x.p99)),
                        );
                    }
                    cells.push(f.hypercall_cpuid.clone().unwrap_or_default());
                    cells.push(f.hypercall_syscall.clone().unwrap_or_default());
                }
                LinuxRow::Failed(_) => {
                    cells.extend(LINUX_KINDS.iter().map(|_| "-".to_owned()));
                    cells.extend(["FAILED".to_owned(), "FAILED".to_owned()]);
                }
            }
            rows.push(cells);
        }
        print!("{}", ui::table(&rows));
        for (machine, row) in &linux {
            match row {
                LinuxRow::Measured(f) => {
                    let cpuid = f.hypercall_cpuid.clone().unwrap_or_default();
                    let syscall = f.hypercall_syscall.clone().unwrap_or_default();
                    linux_ratios.push((*machine, cpuid.parse::<f64>().ok()));
                    println!(
                        "bench linux-{machine}: hypercall/cpuid = {cpuid}, hypercall/syscall = {syscall}"
                    );
                }
                LinuxRow::Failed(reason) => {
                    ok = false;
                    linux_ratios.push((*machine, None));
                    println!(
                        "bench linux-{machine}: hypercall/cpuid = FAILED, hypercall/syscall = FAILED ({reason})"
                    );
                }
            }
        }
    }

    let mut dispatch_insns = None;
    let mut lookup_scaling = None;
    if let Some(host) = &host {
        println!();
        match host {
            Err(e) => {
                ok = false;
                println!("host benches: FAILED ({e})");
            }
            Ok(h) => {
                println!("on the host: criterion median per call (quick configuration)");
                let mut rows = vec![vec!["bench".to_owned(), "median".to_owned()]];
                for id in HOST_IDS {
                    rows.push(vec![
                        id.to_owned(),
                        h.median(id).map_or("missing".to_owned(), ns),
                    ]);
                }
                print!("{}", ui::table(&rows));
                println!("name lookup (criterion median; growth = 100000 names / 10 names)");
                let mut rows = vec![std::iter::once("table".to_owned())
                    .chain(LOOKUP_SIZES.iter().map(|n| format!("{n} names")))
                    .chain(["growth".to_owned()])
                    .collect::<Vec<_>>()];
                for table in LOOKUP_TABLES {
                    let values: Vec<Option<f64>> = LOOKUP_SIZES
                        .iter()
                        .map(|n| h.median(&format!("lookup/{table}/{n}")))
                        .collect();
                    let growth = match (values.first(), values.last()) {
                        (Some(Some(a)), Some(Some(b))) if *a > 0.0 => Some(b / a),
                        _ => None,
                    };
                    if table == LOOKUP_TABLES[0] {
                        lookup_scaling = growth;
                    }
                    rows.push(
                        std::iter::once(table.to_owned())
                            .chain(values.iter().map(|v| v.map_or("missing".to_owned(), ns)))
                            .chain([growth.map_or("-".to_owned(), |g| format!("{g:.1}x"))])
                            .collect(),
                    );
                }
                print!("{}", ui::table(&rows));
            }
        }
    }
    if let Some(counts) = &counts {
        println!();
        match counts {
            Err(e) => {
                ok = false;
                println!("instructions per call: FAILED ({e})");
            }
            Ok(None) => println!("instructions per call: skipped: valgrind not found"),
            Ok(Some(counts)) => {
                println!(
                    "instructions per call (callgrind, exact: (Ir(2N) - Ir(N)) / N inside the function)"
                );
                let mut rows = vec![vec!["operation".to_owned(), "instructions".to_owned()]];
                for (label, r) in counts {
                    let cell = match r {
                        Ok(v) => format!("{v:.1}"),
                        Err(e) => {
                            ok = false;
                            format!("FAILED: {e}")
                        }
                    };
                    if label == "dispatch null" {
                        dispatch_insns = r.as_ref().ok().copied();
                    }
                    rows.push(vec![label.clone(), cell]);
                }
                print!("{}", ui::table(&rows));
            }
        }
    }

    println!();
    println!("targets:");
    let measured = Measured {
        vm: &vm,
        linux: &linux_ratios,
        dispatch_insns,
        lookup_scaling,
    };
    for (scope, targets) in TARGETS {
        for platform in measured.platforms(scope) {
            for target in targets {
                println!(
                    "{}",
                    target.line(platform, measured.value(platform, target))
                );
            }
        }
    }
    println!(
        "bench {} in {}",
        if ok {
            "finished"
        } else {
            "finished with failures"
        },
        ui::secs(start.elapsed())
    );
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_lines_parse() {
        let console = "\
vmm: booting
bench: iterations=12000 warmup=200 (interleaved)
bench: framework: call!(\"null\"): cached number
bench: framework median=61580 p99=111400 min=60340 max=6745620 halves=61820/61340 cycles
bench: raw median=51980 p99=95980 min=51100 max=4397520 halves=52120/51880 cycles
bench: framework/raw = 1.184
bench: lookup/raw = 1.313
";
        let f = parse_console(console);
        assert_eq!(f.iterations, Some(12000));
        assert_eq!(f.ratio.as_deref(), Some("1.184"));
        assert_eq!(
            f.figures,
            vec![
                VmFigure {
                    kind: "framework".into(),
                    median: 61580,
                    p99: 111400
                },
                VmFigure {
                    kind: "raw".into(),
                    median: 51980,
                    p99: 95980
                },
            ]
        );
        // The run on 4 CPUs (examples/bench/guest/src/smp.rs).
        let smp = "\
bench: smp1 median=410 cycles (vCPU 0 alone, 3000 calls)
bench: smp4 medians=[410, 412, 410, 410] cycles (4 vCPUs at once, 3000 calls each)
bench: smp4/smp1 = 1.001
";
        let f = parse_console(smp);
        assert_eq!(f.smp.as_deref(), Some("1.001"));
        assert!(f.figures.is_empty() && f.ratio.is_none());
    }

    #[test]
    fn long_call_and_batch_lines_parse() {
        let console = "\
bench: batch32/single = 1.051
bench: batch1/single = 7.780
bench: batch32-phys/single = 0.201
bench: batch1-phys/single = 2.500
bench: stepped/unstepped = 1.016
bench: longest exit of a long call = 709963 ticks, 256 steps (budget 256 steps)
bench: typed/plain = 1.000
";
        let f = parse_console(console);
        assert_eq!(
            f.long_ratios,
            vec![
                ("batch32/single".to_owned(), "1.051".to_owned()),
                ("batch1/single".to_owned(), "7.780".to_owned()),
                ("batch32-phys/single".to_owned(), "0.201".to_owned()),
                ("batch1-phys/single".to_owned(), "2.500".to_owned()),
                ("stepped/unstepped".to_owned(), "1.016".to_owned()),
            ]
        );
        assert_eq!(
            f.longest,
            Some((256, "709963 ticks, 256 steps (budget 256 steps)".to_owned()))
        );
        assert!(f.ratio.is_none() && f.figures.is_empty());
    }

    #[test]
    fn linux_console_lines_parse() {
        let console = "\
  | vmmcall-init: running /bin/bench-linux
  | bench-linux: iterations=5000 warmup=100 from ring 3
  | bench-linux: hypercall median=388 p99=390 ticks
  | bench-linux: cpuid median=382 p99=382 ticks
  | bench-linux: syscall median=349 p99=351 ticks
  | bench-linux: hypercall/cpuid = 1.015
  | bench-linux: hypercall/syscall = 1.111
bench: framework/raw = 9.999
";
        let f = parse_linux_console(console);
        assert_eq!(f.hypercall_cpuid.as_deref(), Some("1.015"));
        assert_eq!(f.hypercall_syscall.as_deref(), Some("1.111"));
        assert_eq!(f.figures.len(), 3);
        assert_eq!(
            f.get("syscall").map(|x| (x.median, x.p99)),
            Some((349, 351))
        );
        assert_eq!(
            parse_console(console).figures,
            Vec::new(),
            "no bench: figures"
        );
    }

    #[test]
    fn criterion_and_callgrind_numbers_parse() {
        let json = r#"{"mean":{"confidence_interval":{"lower_bound":1.0},"point_estimate":23.3},"median":{"confidence_interval":{"confidence_level":0.95},"point_estimate":23.25,"standard_error":0.01}}"#;
        assert_eq!(criterion_median(json), Some(23.25));
        assert_eq!(criterion_median("{}"), None);
        let stderr = "==1== Events    : Ir\n==1== Collected : 760000\n==1==\n";
        assert_eq!(callgrind_collected(stderr), Some(760000));
        assert_eq!(callgrind_collected("nothing"), None);
        assert_eq!(counted(stderr, "*f"), Ok(760000));
        assert!(counted("nothing", "*f").is_err());
        let zero = "==1== Events    : Ir\n==1== Collected : 0\n";
        let e = counted(zero, "*Registry::lookup").unwrap_err();
        assert!(e.contains("*Registry::lookup"), "{e}");
    }

    #[test]
    fn target_lines_keep_their_text() {
        let figures = |pairs: &[(&str, u64)], ratio: &str| VmFigures {
            iterations: Some(11_000),
            figures: pairs
                .iter()
                .map(|(k, m)| VmFigure {
                    kind: (*k).to_owned(),
                    median: *m,
                    p99: *m,
                })
                .collect(),
            ratio: Some(ratio.to_owned()),
            smp: None,
            smp_failure: None,
            long_ratios: vec![
                ("batch32/single".to_owned(), "0.120".to_owned()),
                ("batch1/single".to_owned(), "1.300".to_owned()),
            ],
            longest: Some((256, String::new())),
        };
        let vm = vec![
            (Machine::QEMU_SVM, VmRow::Measured(figures(&[], "1.031"))),
            (
                Machine::BOCHS_VMX,
                VmRow::Measured(figures(
                    &[
                        ("framework", 120),
                        ("raw", 100),
                        ("direct", 111),
                        ("typed", 130),
                        ("plain", 130),
                    ],
                    "1.200",
                )),
            ),
            (Machine::BOCHS_SVM, VmRow::Failed("timed out".to_owned())),
        ];
        let linux = vec![(Machine::QEMU_SVM, Some(1.018)), (Machine::BOCHS_VMX, None)];
        let measured = Measured {
            vm: &vm,
            linux: &linux,
            dispatch_insns: Some(0.0),
            lookup_scaling: Some(1.18),
        };
        let mut lines = Vec::new();
        for (scope, targets) in TARGETS {
            for platform in measured.platforms(scope) {
                for target in targets {
                    lines.push(target.line(platform, measured.value(platform, target)));
                }
            }
        }
        assert_eq!(
            lines,
            [
                "  framework/raw <= 1.05 on qemu-svm: 1.031: met",
                "  framework/raw <= 1.10 on bochs-vmx: 1.200: NOT met (see docs/BENCHMARKS.md)",
                "  VMM side over raw (direct - raw) <= 30 ticks on bochs-vmx: 11: met",
                "  guest call site over inline asm (framework - direct) <= 12 ticks on \
                 bochs-vmx: 9: met",
                "  a typed call costs no more than #[vmmcall] with the same parameters \
                 (typed - plain <= 0 ticks) on bochs-vmx: 0: met",
                "  a batch of 32 null calls, per entry, over one null call \
                 (batch32/single <= 0.15) on bochs-vmx: 0.120: met",
                "  a batch of 1 over one null call (batch1/single <= 1.10) on bochs-vmx: \
                 1.300: NOT met (see docs/BENCHMARKS.md)",
                "  the same, buffers by guest-physical address (batch32-phys/single <= 0.15) \
                 on bochs-vmx: -: not measured",
                "  the same, buffers by guest-physical address (batch1-phys/single <= 1.10) \
                 on bochs-vmx: -: not measured",
                "  a long call in steps over the same work in one exit \
                 (stepped/unstepped <= 1.02) on bochs-vmx: -: not measured",
                "  the longest exit of a long call within the step budget (<= 256 steps) \
                 on bochs-vmx: 256: met",
                "  hypercall/cpuid <= 1.10 from a Linux process on qemu-svm: 1.018: met",
                "  hypercall/cpuid <= 1.10 from a Linux process on bochs-vmx: -: not measured",
                "  host dispatch of a null hypercall <= 40 instructions: 0.0: not measured",
                "  lookup with 100000 names within 2x of 10 names: 1.18x: met",
            ]
        );
    }

    #[test]
    fn args_parse() {
        let p = |s: &str| BenchArgs::parse(s.split_whitespace().map(str::to_owned).collect());
        assert_eq!(p("").unwrap(), BenchArgs::default());
        let b = p("--platform qemu-svm --platform=bochs-svm --skip-host").unwrap();
        assert_eq!(b.platforms, vec![Machine::QEMU_SVM, Machine::BOCHS_SVM]);
        assert!(b.skip_host && !b.skip_vm);
        assert!(p("--platform").is_err());
        assert!(p("--platform qemu-vmx").is_err());
        assert!(p("--skip-vm --skip-host").is_err());
        assert!(p("--frob").is_err());
        assert!(p("--skip-linux").unwrap().skip_linux);
    }
}
