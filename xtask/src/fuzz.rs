//! `cargo xtask fuzz`: the fuzz targets (property tests against reference
//! models, see `vmmcall/tests/fuzz.rs`, `vmmcall/tests/paging.rs`,
//! `vmexit/tests/fuzz.rs` and `vmexit/tests/props.rs`) in release mode,
//! with many more cases than the bounded pass of `cargo xtask test` and a
//! fresh seed per round.
//!
//! The bounded pass ([`test_pass`]) runs the same targets inside `cargo
//! test --workspace` with [`TEST_CASES`] cases each and one seed, printed
//! first so that a failure in CI can be reproduced.
//!
//! Each target is one proptest in the host workspace. A round runs it once
//! with `PROPTEST_CASES=N` and `PROPTEST_RNG_SEED=S` (proptest reads both);
//! with `--minutes M` rounds repeat, seed after seed, until the target's
//! share of the time is used. A failure prints proptest's minimal input and
//! the seed that reproduces it, and the command fails. The table at the
//! end gives cases and time per target.

use crate::cargo::cargo;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::paths::Layout;
use crate::ui;

/// One fuzz target: a proptest in a test file of a package.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// What it fuzzes.
    pub name: &'static str,
    /// Package.
    pub package: &'static str,
    /// Integration test file (`tests/<file>.rs`).
    pub test: &'static str,
    /// The test function.
    pub function: &'static str,
}

/// Every target, in the order they run.
pub const TARGETS: [Target; 10] = [
    Target {
        name: "name reader",
        package: "vmmcall",
        test: "fuzz",
        function: "name_reader_matches_the_model",
    },
    Target {
        name: "marshalling: FromReg",
        package: "vmmcall",
        test: "fuzz",
        function: "from_reg_matches_the_abi_table",
    },
    Target {
        name: "marshalling: IntoRet",
        package: "vmmcall",
        test: "fuzz",
        function: "into_ret_never_aliases_an_error",
    },
    Target {
        name: "dispatch",
        package: "vmmcall",
        test: "fuzz",
        function: "dispatch_matches_the_abi",
    },
    Target {
        name: "page walk vs model",
        package: "vmmcall",
        test: "fuzz",
        function: "page_walk_matches_the_model",
    },
    Target {
        name: "page walk, random tables",
        package: "vmmcall",
        test: "paging",
        function: "random_tables_match_the_model",
    },
    Target {
        name: "page walk, long writes",
        package: "vmmcall",
        test: "paging",
        function: "long_writes_match_the_model",
    },
    Target {
        name: "exit decoding: VMX",
        package: "vmexit",
        test: "fuzz",
        function: "vmx_decoding_matches_the_reference",
    },
    Target {
        name: "exit decoding: SVM",
        package: "vmexit",
        test: "fuzz",
        function: "svm_decoding_matches_the_reference",
    },
    Target {
        name: "hypercall route",
        package: "vmexit",
        test: "props",
        function: "handle_hypercall_matches_the_model",
    },
];

/// Cases per round when `--cases` is not given.
pub const DEFAULT_CASES: u64 = 20_000;

/// Cases per target in the bounded pass of `cargo xtask test` (debug build;
/// proptest's default is 256).
pub const TEST_CASES: u64 = 1024;

/// The environment of the bounded fuzz pass in `cargo xtask test`:
/// `PROPTEST_CASES` and `PROPTEST_RNG_SEED`, each kept from the caller's
/// environment if set there (to reproduce a run), else [`TEST_CASES`] and
/// a fresh seed. Printed by the caller before the tests run.
pub fn test_pass(env: impl Fn(&str) -> Option<String>) -> [(&'static str, String); 2] {
    let cases = env("PROPTEST_CASES").unwrap_or_else(|| TEST_CASES.to_string());
    let seed = env("PROPTEST_RNG_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
            .to_string()
    });
    [("PROPTEST_CASES", cases), ("PROPTEST_RNG_SEED", seed)]
}

/// `cargo xtask fuzz` options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FuzzArgs {
    /// Cases per round and target.
    pub cases: Option<u64>,
    /// Total time to spend; without it, one round per target.
    pub minutes: Option<u64>,
    /// Substrings of target names to keep (empty: all).
    pub filters: Vec<String>,
    /// First seed (rounds use seed, seed + 1, ...).
    pub seed: Option<u64>,
}

impl FuzzArgs {
    /// Parses the arguments after `cargo xtask fuzz`.
    pub fn parse(args: Vec<String>) -> Result<FuzzArgs> {
        let mut f = FuzzArgs::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .with_context(|| format!("{name} needs a value"))
            };
            let number = |v: String| -> Result<u64> {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("{name} wants a positive number, got `{v}`"))
            };
            match name.as_str() {
                "--cases" => f.cases = Some(number(value()?)?),
                "--minutes" => f.minutes = Some(number(value()?)?),
                "--seed" => {
                    let v = value()?;
                    f.seed = Some(
                        v.parse()
                            .with_context(|| format!("--seed wants a number, got `{v}`"))?,
                    );
                }
                "--filter" => f.filters.push(value()?),
                a => bail!("unknown argument `{a}` for fuzz"),
            }
        }
        Ok(f)
    }
}

/// What one target did.
struct Tally {
    target: Target,
    cases: u64,
    rounds: u64,
    time: Duration,
    failed_seed: Option<u64>,
}

/// The targets `filters` select (all if empty).
pub fn select(filters: &[String]) -> Vec<Target> {
    TARGETS
        .into_iter()
        .filter(|t| {
            filters.is_empty()
                || filters
                    .iter()
                    .any(|f| t.name.contains(f.as_str()) || t.function.contains(f.as_str()))
        })
        .collect()
}

/// Runs the fuzz command; `Ok(true)` if no target failed.
pub fn fuzz(layout: &Layout, args: &FuzzArgs) -> Result<bool> {
    let targets = select(&args.filters);
    if targets.is_empty() {
        bail!("no fuzz target matches {}", args.filters.join(", "));
    }
    let cases = args.cases.unwrap_or(DEFAULT_CASES);
    let seed0 = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    let share = args
        .minutes
        .map(|m| Duration::from_secs(m * 60) / targets.len() as u32);
    println!(
        "fuzzing {} target(s), {cases} cases per round, first seed {seed0}{}",
        targets.len(),
        share.map_or(" (one round each)".to_owned(), |s| format!(
            ", about {} each",
            ui::secs(s)
        ))
    );
    // Build each package's tests as the rounds will run them (one package
    // at a time: features differ from a joint build), so that the times
    // below are the fuzzing, not the compiler.
    let mut packages: Vec<&str> = targets.iter().map(|t| t.package).collect();
    packages.dedup();
    for package in packages {
        let status = cargo(&layout.root)
            .args(["test", "--release", "--no-run", "-q", "-p", package])
            .status()
            .context("starting cargo test --no-run")?;
        if !status.success() {
            bail!("building the fuzz targets of {package} failed");
        }
    }
    let start = Instant::now();
    let mut tallies = Vec::new();
    let mut seed = seed0;
    for target in targets {
        let mut t = Tally {
            target,
            cases: 0,
            rounds: 0,
            time: Duration::ZERO,
            failed_seed: None,
        };
        loop {
            let began = Instant::now();
            let out = cargo(&layout.root)
                .args([
                    "test",
                    "--release",
                    "-q",
                    "-p",
                    target.package,
                    "--test",
                    target.test,
                    "--",
                    "--exact",
                    target.function,
                ])
                .env("PROPTEST_CASES", cases.to_string())
                .env("PROPTEST_RNG_SEED", seed.to_string())
                // A failure is reported with its seed; no regression file
                // is written into the source tree.
                .env("PROPTEST_DISABLE_FAILURE_PERSISTENCE", "1")
                .output()
                .with_context(|| format!("running {}", target.function))?;
            t.time += began.elapsed();
            t.rounds += 1;
            let text = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() || !text.contains("1 passed") {
                println!("{}: FAILED with seed {seed}:", target.name);
                print!("{text}");
                eprint!("{}", String::from_utf8_lossy(&out.stderr));
                println!(
                    "reproduce: PROPTEST_CASES={cases} PROPTEST_RNG_SEED={seed} cargo test --release -p {} --test {} -- --exact {}",
                    target.package, target.test, target.function
                );
                t.failed_seed = Some(seed);
                seed += 1;
                break;
            }
            t.cases += cases;
            seed += 1;
            if share.is_none_or(|s| t.time >= s) {
                break;
            }
        }
        println!(
            "  {}: {} cases in {} ({} round(s)){}",
            target.name,
            t.cases,
            ui::secs(t.time),
            t.rounds,
            if t.failed_seed.is_some() {
                ", FAILED"
            } else {
                ""
            }
        );
        tallies.push(t);
    }
    println!();
    println!("==== fuzz results ====");
    let mut rows = vec![vec![
        "target".to_owned(),
        "test".to_owned(),
        "cases".to_owned(),
        "time".to_owned(),
        "result".to_owned(),
    ]];
    for t in &tallies {
        rows.push(vec![
            t.target.name.to_owned(),
            format!("{}/{}", t.target.package, t.target.test),
            t.cases.to_string(),
            ui::secs(t.time),
            match t.failed_seed {
                None => "ok".to_owned(),
                Some(s) => format!("FAILED (seed {s})"),
            },
        ]);
    }
    print!("{}", ui::table(&rows));
    let ok = tallies.iter().all(|t| t.failed_seed.is_none());
    let total: u64 = tallies.iter().map(|t| t.cases).sum();
    println!(
        "{}: {total} cases in {}",
        if ok { "OK" } else { "FAILED" },
        ui::secs(start.elapsed())
    );
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<FuzzArgs> {
        FuzzArgs::parse(s.split_whitespace().map(str::to_owned).collect())
    }

    #[test]
    fn options() {
        assert_eq!(p("").unwrap(), FuzzArgs::default());
        let f = p("--cases 500 --minutes=3 --filter dispatch --seed 7").unwrap();
        assert_eq!(f.cases, Some(500));
        assert_eq!(f.minutes, Some(3));
        assert_eq!(f.filters, vec!["dispatch"]);
        assert_eq!(f.seed, Some(7));
        assert!(p("--cases 0").is_err());
        assert!(p("--cases").is_err());
        assert!(p("--minutes x").is_err());
        assert!(p("--frob").is_err());
    }

    #[test]
    fn the_test_pass_prints_and_keeps_its_seed() {
        let fresh = test_pass(|_| None);
        assert_eq!(fresh[0], ("PROPTEST_CASES", TEST_CASES.to_string()));
        assert!(fresh[1].1.parse::<u64>().is_ok());
        let kept = test_pass(|k| Some(format!("{k}-given")));
        assert_eq!(
            kept[1],
            ("PROPTEST_RNG_SEED", "PROPTEST_RNG_SEED-given".to_owned())
        );
    }

    #[test]
    fn every_target_is_a_test_function() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for t in TARGETS {
            let file = root
                .join(t.package)
                .join("tests")
                .join(format!("{}.rs", t.test));
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(
                text.contains(&format!("fn {}(", t.function)),
                "{} has no fn {}",
                file.display(),
                t.function
            );
        }
    }

    #[test]
    fn filters_select_targets() {
        assert_eq!(select(&[]).len(), TARGETS.len());
        let d = select(&["dispatch".to_owned()]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].function, "dispatch_matches_the_abi");
        assert_eq!(select(&["exit decoding".to_owned()]).len(), 2);
        assert!(select(&["nothing".to_owned()]).is_empty());
    }
}
