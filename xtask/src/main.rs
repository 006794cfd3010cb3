//! `cargo xtask`: builds the bare-metal example images, boots them in QEMU
//! and Bochs, and runs the whole test suite. See [`cli::USAGE`] or
//! `cargo xtask help`.
//!
//! Layout of the code:
//! - [`cli`]: the command line;
//! - [`paths`]: project root, examples, image and scratch locations;
//! - [`cargo`]: every cargo command (the cross builds' target directories
//!   and flags);
//! - [`images`]: the bare-metal build (the one place with the flags);
//! - [`setup`]: checking and installing the emulators and ISO tools;
//! - [`platform`]: machines and [`platform::Emulate`], what a run asks of
//!   its emulator, implemented by [`qemu`] and [`bochs`];
//! - [`runner`]: processes with timeouts and live console streaming;
//! - [`verdict`], [`expect`]: deciding success;
//! - [`linux`]: the Debian kernel, the initramfs and the bundle;
//!   [`linux_run`]: the `linux` command;
//! - [`session`]: one boot; [`testing`]: the `test` command;
//!   [`mod@bench`]: the `bench` command; [`fuzz`]: the `fuzz` command;
//!   [`header`]: the `header` command.

mod bench;
mod bochs;
mod cargo;
mod cli;
mod expect;
mod fuzz;
mod header;
mod images;
mod linux;
mod linux_run;
mod paths;
mod platform;
mod qemu;
mod runner;
mod session;
mod setup;
mod testing;
mod ui;
mod verdict;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, RunArgs};
use crate::expect::Expectations;
use crate::paths::Layout;
use crate::platform::Machine;
use crate::session::{Boot, DEFAULT_TIMEOUT};
use crate::verdict::Verdict;

fn build(layout: &Layout, example: Option<String>) -> Result<bool> {
    let examples = match example {
        Some(name) => {
            layout.check_example(&name)?;
            vec![name]
        }
        None => layout.discover_examples()?,
    };
    images::build(layout, &examples)?;
    Ok(true)
}

fn run(layout: &Layout, args: RunArgs) -> Result<bool> {
    let machine = Machine::select(args.emulator, args.cpu, args.accel, qemu::host_kvm_cpu)?
        .with_cpus(args.cpus);
    layout.check_example(&args.example)?;
    // On N CPUs: examples/NAME/expect-cpusN.txt if there is one.
    let smp_file = layout.smp_expect_file(&args.example, args.cpus);
    let expected = if args.cpus > 1 && smp_file.exists() {
        Expectations::load(&smp_file)?
    } else {
        Expectations::load(&layout.expect_file(&args.example))?
    };
    if let Some(reason) = expected.skip_reason(&machine.name()) {
        println!(
            "note: {}/expect.txt skips {machine} in `cargo xtask test` ({reason}); running it anyway",
            args.example
        );
    }
    setup::ensure(&[machine.emulator.facts().toolset])?;
    images::build(layout, std::slice::from_ref(&args.example))?;
    let outcome = session::boot(&Boot {
        payload: session::example_payload(layout, &args.example),
        layout,
        name: &args.example,
        machine,
        timeout: args.timeout.or(expected.timeout).unwrap_or(DEFAULT_TIMEOUT),
        expected: &expected,
        labelled: false,
    });
    Ok(outcome.verdict == Verdict::Pass)
}

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args().skip(1)) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {e:#}\n(see `cargo xtask help`)");
            return ExitCode::from(2);
        }
    };
    let layout = Layout::current();
    let result = match cli {
        Cli::Help => {
            print!("{}", cli::USAGE);
            Ok(true)
        }
        Cli::Build(example) => build(&layout, example),
        Cli::Run(args) => run(&layout, args),
        Cli::Test(args) => testing::test(&layout, &args),
        Cli::Bench(args) => bench::bench(&layout, &args),
        Cli::Fuzz(args) => fuzz::fuzz(&layout, &args),
        Cli::Header { check } => header::header(&layout, check),
        Cli::Linux(args) => {
            return match linux_run::linux(&layout, &args) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
