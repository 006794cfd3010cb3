//! `cargo xtask test`: host tests, example builds, the emulator matrix and the
//! result table.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cargo::{self, cargo, Build};
use crate::cli::TestArgs;
use crate::expect::Expectations;
use crate::images;
use crate::linux_run::{self, Prepared};
use crate::paths::Layout;
use crate::platform::{Emulator, Machine};
use crate::session::{self, Boot, Outcome, DEFAULT_TIMEOUT};
use crate::setup::{self, Toolset};
use crate::ui;
use crate::verdict::Verdict;

/// The result of one cell of the matrix.
enum Cell {
    /// The example opted out of this platform.
    Skipped(String),
    /// Not run because an earlier step failed.
    NotRun(String),
    /// Ran.
    Ran(Outcome),
}

impl Cell {
    fn failed(&self) -> bool {
        match self {
            Cell::Skipped(_) => false,
            Cell::NotRun(_) => true,
            Cell::Ran(o) => o.verdict != Verdict::Pass,
        }
    }

    fn short(&self) -> String {
        match self {
            Cell::Skipped(_) => "skip".to_owned(),
            Cell::NotRun(_) => "not run".to_owned(),
            Cell::Ran(o) => format!(
                "{} {}",
                if o.verdict == Verdict::Pass {
                    "pass"
                } else {
                    "FAIL"
                },
                ui::secs(o.elapsed)
            ),
        }
    }
}

fn host_tests(layout: &Layout) -> Result<bool> {
    // The fuzz targets' bounded pass: its cases and seed, printed so that a
    // failure can be reproduced with the same environment.
    let fuzz_env = crate::fuzz::test_pass(|k| std::env::var(k).ok());
    let shown = fuzz_env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    println!(
        "running host tests: {shown} cargo test --workspace (in {})",
        layout.root.display()
    );
    let status = cargo(&layout.root)
        .args(["test", "--workspace"])
        .envs(fuzz_env)
        .status()
        .context("starting cargo test")?;
    if !status.success() {
        println!("host tests failed; the property tests ran with {shown}");
    }
    Ok(status.success())
}

/// `cargo fmt --check` on both workspaces, then clippy with warnings as
/// errors: the host workspace (all targets), then
/// the bare-metal images (vmm-core with its `rt` runtime and guest-rt,
/// which host builds never compile); and the host workspace's docs with
/// rustdoc's warnings as errors (broken or ambiguous intra-doc links).
fn lints(layout: &Layout, examples: &[String]) -> Result<bool> {
    let mut fmt_ok = true;
    for dir in [layout.root.clone(), layout.examples_dir()] {
        println!(
            "checking formatting: cargo fmt --all -- --check (in {})",
            dir.display()
        );
        fmt_ok &= cargo(&dir)
            .args(["fmt", "--all", "--", "--check"])
            .status()
            .context("starting cargo fmt")?
            .success();
    }
    if !fmt_ok {
        println!("formatting differs: run `cargo fmt --all` (and in examples/)");
    }
    println!("running clippy: cargo clippy --workspace --all-targets -- -D warnings");
    let mut ok = fmt_ok;
    ok &= cargo(&layout.root)
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .status()
        .context("starting cargo clippy")?
        .success();
    // Private items first, then the public docs, which stay in
    // target/doc; the public run also catches a public page linking to a
    // private item, which the private run documents and so lets pass.
    let mut docs_ok = true;
    for private in [true, false] {
        let flag = if private {
            " --document-private-items"
        } else {
            ""
        };
        println!(
            "checking the docs: RUSTDOCFLAGS='-D warnings' cargo doc --no-deps --workspace{flag}"
        );
        let mut cmd = cargo(&layout.root);
        cmd.args(["doc", "--no-deps", "--workspace", "--quiet"]);
        if private {
            cmd.arg("--document-private-items");
        }
        docs_ok &= cmd
            .env("RUSTDOCFLAGS", "-D warnings")
            .status()
            .context("starting cargo doc")?
            .success();
    }
    if !docs_ok {
        println!("the docs have warnings: a broken or ambiguous intra-doc link, above");
    }
    ok &= docs_ok;
    for role in crate::paths::Role::ALL {
        println!(
            "running clippy on the {} images (bare-metal flags)",
            role.dir()
        );
        let mut cmd = images::cargo_command(layout, role, examples, "clippy");
        cmd.args(["--", "-D", "warnings"]);
        ok &= cmd.status().context("starting cargo clippy")?.success();
    }
    let linux: Vec<String> = examples
        .iter()
        .filter(|e| linux_run::example_program_dir(layout, e).is_some())
        .map(|e| format!("{e}-linux"))
        .collect();
    if !linux.is_empty() {
        println!("running clippy on the Linux programs: {}", linux.join(", "));
        let mut cmd = cargo::cross(layout, &layout.examples_dir(), Build::StaticLinux, "clippy");
        for p in &linux {
            cmd.args(["--package", p]);
        }
        cmd.args(["--", "-D", "warnings"]);
        ok &= cmd.status().context("starting cargo clippy")?.success();
    }
    Ok(ok)
}

/// The crates that are published, in dependency order.
pub const PUBLISHED: [&str; 4] = ["vmmcall-macros", "vmmcall", "vmexit", "guest-sdk"];

/// `cargo package` of the published crates, together: each is built from
/// its packaged sources as crates.io would get them. Packaging them in one
/// command lets cargo resolve each one's unpublished siblings from a local
/// overlay registry (`target/package/tmp-registry`); one at a time, every
/// crate but vmmcall-macros would look for its siblings on crates.io and
/// fail. `--allow-dirty`: this checks the packaging, it publishes nothing.
///
/// It runs with a cargo home of its own ([`package_home`]), so the
/// user's `$CARGO_HOME` is neither read for stale copies nor cleaned.
fn package(layout: &Layout) -> Result<bool> {
    let home = package_home(layout)?;
    forget_stale_packages(layout, &home);
    let mut args = vec!["package", "--allow-dirty", "--quiet"];
    for p in PUBLISHED {
        args.extend(["--package", p]);
    }
    let target_dir = layout.package_target_dir();
    let shown = |p: &Path| {
        p.strip_prefix(&layout.root)
            .unwrap_or(p)
            .display()
            .to_string()
    };
    println!(
        "packaging the published crates: CARGO_HOME={} CARGO_TARGET_DIR={} cargo {}",
        shown(&home),
        shown(&target_dir),
        args.join(" ")
    );
    let ok = cargo(&layout.root)
        .env("CARGO_HOME", &home)
        .env("CARGO_TARGET_DIR", &target_dir)
        .args(&args)
        .status()
        .context("starting cargo package")?
        .success();
    if !ok {
        println!("cargo package failed: a published crate does not build from its package");
    }
    Ok(ok)
}

/// The verification's cargo home (`target/package-check/cargo-home`),
/// holding a copy of the user's cargo configuration (`config.toml` or
/// `config` in `$CARGO_HOME`, or `~/.cargo`: registry mirrors, proxies,
/// `net.offline` still apply) and no credentials (nothing is published).
/// Cargo fills its registry index and download cache from crates.io on
/// the first run and reuses them after; the project's own
/// `.cargo/config.toml` applies as everywhere.
fn package_home(layout: &Layout) -> Result<PathBuf> {
    let home = layout.package_cargo_home();
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    let user = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    for name in ["config.toml", "config"] {
        let ours = home.join(name);
        match user.as_ref().map(|u| u.join(name)).filter(|f| f.is_file()) {
            Some(theirs) => {
                std::fs::copy(&theirs, &ours).with_context(|| {
                    format!("copying {} to {}", theirs.display(), ours.display())
                })?;
            }
            None => {
                let _ = std::fs::remove_file(&ours);
            }
        }
    }
    Ok(home)
}

/// Make the verification build our crates from the packaged sources of
/// this run. Cargo takes the overlay registry's crates for immutable (a
/// registry package never changes under its version) and reuses whatever
/// it built from them before, and whatever it unpacked into
/// `CARGO_HOME/registry/src/-HASH/` (HASH of the overlay's path: no host
/// name, so it starts with `-`). After a change to vmmcall-macros, vmmcall
/// would be verified against the old macros. Remove our crates'
/// fingerprints in the verification's own target directory and the
/// overlay's unpacked copies in its own cargo home `home`; everything else
/// (syn, linkme, ...) stays built and downloaded.
fn forget_stale_packages(layout: &Layout, home: &Path) {
    let fingerprints = layout
        .package_target_dir()
        .join("debug")
        .join(".fingerprint");
    if let Ok(entries) = std::fs::read_dir(&fingerprints) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if PUBLISHED.iter().any(|p| {
                name.strip_prefix(p)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|hash| !hash.contains('-'))
            }) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let Ok(registries) = std::fs::read_dir(home.join("registry").join("src")) else {
        return;
    };
    for registry in registries.flatten() {
        if registry.file_name().to_string_lossy().starts_with('-') {
            let _ = std::fs::remove_dir_all(registry.path());
        }
    }
}

/// Selects the examples whose names contain any of `filters` (all if empty).
fn select(examples: Vec<String>, filters: &[String]) -> Vec<String> {
    examples
        .into_iter()
        .filter(|e| filters.is_empty() || filters.iter().any(|f| e.contains(f.as_str())))
        .collect()
}

/// Runs the test command; `Ok(true)` if everything passed.
pub fn test(layout: &Layout, args: &TestArgs) -> Result<bool> {
    let start = Instant::now();
    let platforms: Vec<Machine> = if args.platforms.is_empty() {
        Machine::MATRIX.to_vec()
    } else {
        args.platforms.clone()
    };

    let mut examples = Vec::new();
    let mut expectations = Vec::new();
    // `examples/NAME/expect-cpusN.txt`: NAME again on N CPUs.
    let mut smp_rows: Vec<(usize, u8, Expectations)> = Vec::new();
    if !args.host_only {
        examples = select(layout.discover_examples()?, &args.filters);
        if examples.is_empty() {
            bail!(
                "no examples found: nothing matches {}/*/vmm/Cargo.toml{}",
                layout.examples_dir().display(),
                if args.filters.is_empty() {
                    String::new()
                } else {
                    format!(" with --filter {}", args.filters.join(", "))
                }
            );
        }
        for (i, name) in examples.iter().enumerate() {
            layout.check_example(name)?;
            expectations.push(Expectations::load(&layout.expect_file(name))?);
            for (cpus, path) in layout.smp_expect_files(name)? {
                smp_rows.push((i, cpus, Expectations::load(&path)?));
            }
        }
        let mut tools: Vec<Toolset> = Emulator::ALL
            .into_iter()
            .filter(|e| platforms.iter().any(|p| p.emulator == *e))
            .map(|e| e.facts().toolset)
            .collect();
        // The Linux guests' C programs.
        tools.push(Toolset::C);
        setup::ensure(&tools)?;
    }

    let host = if args.skip_host {
        None
    } else {
        // guest-sdk's C header test builds a C program with gcc -static.
        setup::ensure(&[Toolset::C])?;
        let t = Instant::now();
        let mut ok = host_tests(layout)?;
        ok &= lints(layout, &layout.discover_examples()?)?;
        ok &= package(layout)?;
        println!(
            "host tests {} in {}",
            if ok { "passed" } else { "FAILED" },
            ui::secs(t.elapsed())
        );
        Some((ok, t.elapsed()))
    };
    if args.host_only {
        return Ok(host.is_some_and(|(ok, _)| ok));
    }

    // One build for all examples; if it fails, build them one at a time so
    // a broken example does not stop the others from being tested.
    let mut build_errors: Vec<Option<String>> = vec![None; examples.len()];
    if let Err(e) = images::build(layout, &examples) {
        println!("error: {e:#}");
        if examples.len() > 1 {
            println!("building the examples one at a time to find the broken ones");
            for (i, name) in examples.iter().enumerate() {
                if let Err(e) = images::build(layout, std::slice::from_ref(name)) {
                    println!("error: {e:#}");
                    build_errors[i] = Some(format!("{e:#}"));
                }
            }
        }
        if build_errors.iter().all(Option::is_none) {
            // The joint build failed but every single one worked (or there
            // is only one): blame them all.
            build_errors = vec![Some(format!("{e:#}")); examples.len()];
        }
    }

    // The Linux guests: every selected example with a Linux program runs
    // it under its VMM, as `cargo xtask linux NAME` does.
    let linux_examples: Vec<usize> = (0..examples.len())
        .filter(|&i| build_errors[i].is_none() && linux_run::has_linux_guest(layout, &examples[i]))
        .collect();
    let mut linux_rows: Vec<(usize, std::result::Result<Prepared, String>)> = Vec::new();
    if !linux_examples.is_empty() {
        let kernel = crate::linux::kernel(layout, None).map_err(|e| format!("{e:#}"));
        for &i in &linux_examples {
            let prepared = kernel.clone().and_then(|k| {
                linux_run::prepare(layout, &examples[i], &k, &[]).map_err(|e| format!("{e:#}"))
            });
            if let Err(e) = &prepared {
                println!("error: the Linux guest of {}: {e}", examples[i]);
            }
            linux_rows.push((i, prepared));
        }
    }
    // Linux guests whose expect.txt has `cpus:`: once more on that many
    // CPUs (indices into linux_rows).
    let linux_smp: Vec<usize> = linux_rows
        .iter()
        .enumerate()
        .filter(|(_, (_, p))| p.as_ref().is_ok_and(|p| !p.expected.cpus.is_empty()))
        .map(|(k, _)| k)
        .collect();
    // Rows: every example, every example's SMP run, every Linux guest,
    // then the Linux guests' SMP runs.
    let row_names: Vec<String> = examples
        .iter()
        .cloned()
        .chain(
            smp_rows
                .iter()
                .map(|(i, cpus, _)| format!("{} x{cpus}", examples[*i])),
        )
        .chain(
            linux_rows
                .iter()
                .map(|(i, _)| format!("{} (linux)", examples[*i])),
        )
        .chain(
            linux_smp
                .iter()
                .map(|&k| format!("{} (linux smp)", examples[linux_rows[k].0])),
        )
        .collect();
    let run_names: Vec<String> = examples
        .iter()
        .cloned()
        .chain(
            smp_rows
                .iter()
                .map(|(i, cpus, _)| format!("{}-cpus{cpus}", examples[*i])),
        )
        .chain(
            linux_rows
                .iter()
                .map(|(i, _)| format!("{}-linux", examples[*i])),
        )
        .chain(
            linux_smp
                .iter()
                .map(|&k| format!("{}-linux-smp", examples[linux_rows[k].0])),
        )
        .collect();

    // The matrix, row-major. Linux runs take longest: queue them first.
    let mut cells: Vec<Option<Cell>> = Vec::new();
    let mut queue = VecDeque::new();
    let example_rows = expectations
        .iter()
        .enumerate()
        .chain(smp_rows.iter().map(|(i, _, e)| (*i, e)));
    for (i, expected) in example_rows {
        for platform in &platforms {
            let cell = if let Some(reason) = expected.skip_reason(&platform.name()) {
                println!("skipping {} on {platform}: {reason}", examples[i]);
                Some(Cell::Skipped(reason.to_owned()))
            } else if let Some(e) = &build_errors[i] {
                Some(Cell::NotRun(format!("the build failed: {e}")))
            } else {
                queue.push_back(cells.len());
                None
            };
            cells.push(cell);
        }
    }
    for (_, prepared) in &linux_rows {
        for _ in &platforms {
            let cell = match prepared {
                Ok(_) => {
                    queue.push_front(cells.len());
                    None
                }
                Err(e) => Some(Cell::NotRun(format!(
                    "preparing the Linux guest failed: {e}"
                ))),
            };
            cells.push(cell);
        }
    }
    for &k in &linux_smp {
        let expected = linux_rows[k].1.as_ref().map(|p| &p.expected).ok();
        for platform in &platforms {
            let cell = if expected
                .and_then(|e| e.cpus_for(&platform.name()))
                .is_some()
            {
                queue.push_front(cells.len());
                None
            } else {
                Some(Cell::Skipped(format!(
                    "its expect.txt names no `cpus:` for {platform}"
                )))
            };
            cells.push(cell);
        }
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get().min(2))
                .unwrap_or(1)
        })
        .min(queue.len().max(1));
    if !queue.is_empty() {
        println!("booting {} run(s), {} at a time", queue.len(), jobs);
    }
    let queue = Mutex::new(queue);
    let cells = Mutex::new(cells);
    let width = platforms.len();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let Some(index) = queue.lock().expect("queue lock").pop_front() else {
                    break;
                };
                let (row, platform) = (index / width, platforms[index % width]);
                // Example rows, then SMP rows, then Linux rows.
                let smp = row
                    .checked_sub(examples.len())
                    .and_then(|r| smp_rows.get(r));
                let example = if row < examples.len() {
                    Some((row, 1, &expectations[row]))
                } else {
                    smp.map(|(i, cpus, e)| (*i, *cpus, e))
                };
                let linux = row.checked_sub(examples.len() + smp_rows.len());
                let outcome = match (example, linux) {
                    (Some((i, cpus, expected)), _) => session::boot(&Boot {
                        payload: session::example_payload(layout, &examples[i]),
                        layout,
                        name: &run_names[row],
                        machine: platform.with_cpus(cpus),
                        timeout: args.timeout.or(expected.timeout).unwrap_or(DEFAULT_TIMEOUT),
                        expected,
                        labelled: jobs > 1,
                    }),
                    (None, None) => unreachable!("every row is an example, SMP or Linux row"),
                    (None, Some(l)) => {
                        // A Linux row, or (past them) a Linux SMP row.
                        let (l, cpus) = match l.checked_sub(linux_rows.len()) {
                            None => (l, 1),
                            Some(k) => {
                                let l = linux_smp[k];
                                let cpus = linux_rows[l]
                                    .1
                                    .as_ref()
                                    .ok()
                                    .and_then(|p| p.expected.cpus_for(&platform.name()))
                                    .unwrap_or(1);
                                (l, cpus)
                            }
                        };
                        let platform = platform.with_cpus(cpus);
                        let (example, prepared) = &linux_rows[l];
                        let prepared = prepared.as_ref().expect("only prepared rows are queued");
                        let timeout = args
                            .timeout
                            .or(prepared.expected.timeout)
                            .unwrap_or_else(|| platform.emulator.facts().linux_timeout);
                        session::boot(&linux_run::vmm_boot(
                            layout,
                            &run_names[row],
                            &examples[*example],
                            platform,
                            prepared,
                            timeout,
                            jobs > 1,
                        ))
                    }
                };
                cells.lock().expect("cells lock")[index] = Some(Cell::Ran(outcome));
            });
        }
    });
    let cells: Vec<Cell> = cells
        .into_inner()
        .expect("cells lock")
        .into_iter()
        .map(|c| c.expect("every queued run finished"))
        .collect();

    // The report.
    println!();
    println!("==== results ====");
    if let Some((ok, elapsed)) = host {
        println!(
            "host tests and clippy: {} {}",
            if ok { "pass" } else { "FAIL" },
            ui::secs(elapsed)
        );
    }
    for (name, e) in examples.iter().zip(&build_errors) {
        if e.is_some() {
            println!("build of {name}: FAIL");
        }
    }
    let mut rows = vec![std::iter::once("example".to_owned())
        .chain(platforms.iter().map(Machine::name))
        .collect::<Vec<_>>()];
    for (i, name) in row_names.iter().enumerate() {
        let mut row = vec![name.clone()];
        row.extend(cells[i * width..(i + 1) * width].iter().map(Cell::short));
        rows.push(row);
    }
    print!("{}", ui::table(&rows));
    let mut failed = 0;
    let mut skipped = 0;
    let mut passed = 0;
    for (index, cell) in cells.iter().enumerate() {
        let run = format!(
            "{} on {}",
            row_names[index / width],
            platforms[index % width]
        );
        match cell {
            Cell::Skipped(reason) => {
                skipped += 1;
                println!("  skipped {run}: {reason}");
            }
            Cell::NotRun(reason) => {
                failed += 1;
                println!("  not run {run}: {reason}");
            }
            Cell::Ran(o) => match &o.verdict {
                Verdict::Pass => passed += 1,
                Verdict::Fail(reasons) => {
                    failed += 1;
                    println!("  FAILED {run}: {}", reasons.join("; "));
                }
            },
        }
    }
    let host_ok = host.is_none_or(|(ok, _)| ok);
    let all_ok =
        host_ok && build_errors.iter().all(Option::is_none) && !cells.iter().any(Cell::failed);
    // The host step (cargo test + clippy) counts as one more item, so the
    // closing line accounts for everything this command checked.
    match host {
        Some((true, _)) => passed += 1,
        Some((false, _)) => failed += 1,
        None => {}
    }
    println!(
        "total {}{}",
        ui::secs(start.elapsed()),
        if host_ok {
            ""
        } else {
            "; the host tests or clippy failed"
        }
    );
    // Last, alone on its line, in the form CI systems read.
    println!(
        "{}: {passed} passed, {failed} failed, {skipped} skipped",
        if all_ok { "OK" } else { "FAILED" }
    );
    Ok(all_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_select_by_substring() {
        let all = vec!["hello".to_owned(), "bench".to_owned(), "echo".to_owned()];
        assert_eq!(select(all.clone(), &[]), all);
        assert_eq!(select(all.clone(), &["ho".to_owned()]), vec!["echo"]);
        assert_eq!(
            select(all, &["hel".to_owned(), "ben".to_owned()]),
            vec!["hello", "bench"]
        );
    }
}
