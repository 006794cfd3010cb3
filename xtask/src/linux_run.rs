//! `cargo xtask linux`: boot an example's VMM with an unmodified Linux
//! kernel as its guest, and run one program in it.
//!
//! The pieces, in order:
//! 1. the kernel: Debian's cloud kernel, fetched and cached by
//!    [`crate::linux::kernel`], or the user's `--kernel`;
//! 2. the static programs ([`build_programs`]): `vmmcall-init` (the test
//!    bench's `/init`, `vmm-core/linux-init`), the `vmmcall` tool
//!    (guest-sdk's `src/bin/vmmcall.rs`), the example's own Linux program
//!    (`examples/NAME/linux`), each built for the Linux target with
//!    `+crt-static` ([`build_static`]), and the example's C programs
//!    (`examples/NAME/c/*.c`, `gcc -static -O2` against
//!    `guest-sdk/include/vmmcall.h`, [`build_c`]);
//! 3. the initramfs ([`initramfs`]): `/init`, `/bin/*` (always
//!    `/bin/vmmcall` and the example's programs), `/dev/console` and
//!    `/etc/vmmcall-init`, the commands init runs: the PROGRAM and its
//!    ARGS, or without one the example's `linux/run.txt` ([`run_list`]);
//! 4. the bundle the VMM boots ([`crate::linux::bundle`]): kernel,
//!    initramfs, command line ([`CMDLINE`]) and guest RAM size;
//! 5. the run ([`crate::session::boot`]); with `--compare`, a second run of
//!    the same kernel and initramfs without the VMM, for the boot-time
//!    ratio.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cargo::{self, Build};
use crate::expect::Expectations;
use crate::images;
use crate::linux::{self, Initramfs};
use crate::paths::{Layout, Role, IMAGE_TARGET};
use crate::platform::{Accel, Cpu, Emulator, Machine, Payload};
use crate::session::{self, Boot, Outcome};
use crate::setup::{self, Toolset};
use crate::ui;
use crate::verdict::Verdict;

/// The kernel command line (the VMM's Linux profile, `docs/VMM-CORE.md`):
/// - `console=ttyS0`: COM1, the UART the guest shares with the VMM;
/// - no `acpi=` option: the only ACPI tables are the RSDP, XSDT and MADT
///   the VMM gives a guest of several vCPUs (none for one vCPU: Linux then
///   finds no RSDP and runs without ACPI, as with `acpi=off`). `acpi=off`
///   and `acpi=noirq` would hide the MADT and, since Debian's kernel has
///   no MP table support, disable the local APIC ("MPS support code is not
///   built-in");
/// - `pci=off`: PCI configuration space is denied (no device can be made
///   to DMA);
/// - `io_delay=none`: no port 0x80 writes (each would be an exit);
/// - `no_timer_check`: skip the IO-APIC timer check (there is none);
/// - `reboot=t panic=-1`: a panic reboots at once by triple fault, which
///   the VMM reports, instead of trying the keyboard controller and BIOS;
/// - `quiet`: fewer console lines (each character costs a UART exit under
///   Bochs);
/// - `rdinit=/init`: the project's init.
pub const CMDLINE: &str = "console=ttyS0 pci=off io_delay=none no_timer_check \
                           reboot=t panic=-1 quiet rdinit=/init";

/// Guest RAM for the Linux guest, in MiB.
pub const RAM_MIB: u32 = 256;

/// `cargo xtask linux` options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxArgs {
    /// The example whose VMM boots Linux.
    pub example: String,
    /// The emulator.
    pub emulator: Emulator,
    /// The CPU, if given.
    pub cpu: Option<Cpu>,
    /// The accelerator, if given.
    pub accel: Option<Accel>,
    /// A bzImage instead of Debian's.
    pub kernel: Option<PathBuf>,
    /// Timeout override.
    pub timeout: Option<Duration>,
    /// Also boot without the VMM and compare.
    pub compare: bool,
    /// PROGRAM and ARGS (empty: the example's own Linux program).
    pub program: Vec<String>,
    /// CPUs of the machine (`--cpus`, default 1).
    pub cpus: u8,
}

/// `cargo build --release` of static Linux programs: `dir` is the
/// workspace, `args` selects packages and binaries.
fn build_static(layout: &Layout, dir: &Path, args: &[&str]) -> Result<()> {
    let mut cmd = cargo::cross(layout, dir, Build::StaticLinux, "build");
    cmd.args(args);
    println!(
        "  CARGO_TARGET_DIR=target/linux-guest RUSTFLAGS=\"-C target-feature=+crt-static\" \
         cargo build --release --target {IMAGE_TARGET} {} (in {})",
        args.join(" "),
        dir.display()
    );
    let status = cmd.status().context("starting cargo")?;
    if !status.success() {
        bail!("building static Linux programs failed ({status})");
    }
    Ok(())
}

/// The example's own Linux program directory, if it has one.
pub fn example_program_dir(layout: &Layout, example: &str) -> Option<PathBuf> {
    let dir = layout.example_linux_dir(example);
    dir.join("Cargo.toml").is_file().then_some(dir)
}

/// Whether `example` has a Linux guest: a Linux program
/// (`examples/NAME/linux`) or C programs (`examples/NAME/c/*.c`).
pub fn has_linux_guest(layout: &Layout, example: &str) -> bool {
    example_program_dir(layout, example).is_some()
        || example_c_sources(layout, example).is_ok_and(|c| !c.is_empty())
}

/// The static programs for the initramfs.
pub struct Programs {
    /// `vmmcall-init`.
    pub init: PathBuf,
    /// The `vmmcall` tool, `/bin/vmmcall` in every initramfs.
    pub tool: PathBuf,
    /// The example's Linux program, if it has one.
    pub example: Option<PathBuf>,
    /// The example's C programs: the name in `/bin` (`STEM-c` for
    /// `c/STEM.c`) and the binary.
    pub c: Vec<(String, PathBuf)>,
}

/// The example's C programs, `examples/NAME/c/*.c`, sorted.
pub fn example_c_sources(layout: &Layout, example: &str) -> Result<Vec<PathBuf>> {
    let dir = layout.example_c_dir(example);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut sources = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|x| x == "c") {
            sources.push(path);
        }
    }
    sources.sort();
    Ok(sources)
}

/// The `gcc` command for one C program of a Linux guest: static, `-O2`,
/// warnings as errors, the header-only SDK on the include path. Nothing
/// else: no build system, no library but libc.
pub fn gcc_command(layout: &Layout, source: &Path, out: &Path) -> Command {
    let mut cmd = Command::new("gcc");
    cmd.args([
        "-static",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-std=gnu11",
        "-I",
    ])
    .arg(layout.c_include_dir())
    .arg(source)
    .arg("-o")
    .arg(out);
    cmd
}

/// Build the example's C programs into `target/linux-guest/c/EXAMPLE/`.
fn build_c(layout: &Layout, example: &str) -> Result<Vec<(String, PathBuf)>> {
    let sources = example_c_sources(layout, example)?;
    let dir = layout.c_programs_dir(example);
    if !sources.is_empty() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut built = Vec::new();
    for source in sources {
        let stem = source
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = format!("{stem}-c");
        let out = dir.join(&name);
        let mut cmd = gcc_command(layout, &source, &out);
        println!(
            "  gcc -static -O2 -Wall -Wextra -Werror -std=gnu11 -I guest-sdk/include {} -o {}",
            source
                .strip_prefix(&layout.root)
                .unwrap_or(&source)
                .display(),
            out.strip_prefix(&layout.root).unwrap_or(&out).display()
        );
        let status = cmd
            .status()
            .context("starting gcc (install gcc and libc6-dev)")?;
        if !status.success() {
            bail!("building {} failed ({status})", source.display());
        }
        built.push((name, out));
    }
    Ok(built)
}

/// Build `vmmcall-init`, the `vmmcall` tool, and the example's Linux
/// program and C programs (if any).
pub fn build_programs(layout: &Layout, example: &str) -> Result<Programs> {
    let t = Instant::now();
    println!("building the static Linux programs");
    build_static(
        layout,
        &layout.root,
        &[
            "--package",
            "vmmcall-init",
            "--package",
            "guest-sdk",
            "--features",
            "guest-sdk/std",
            "--bin",
            "vmmcall-init",
            "--bin",
            "vmmcall",
        ],
    )?;
    let package = format!("{example}-linux");
    let example_bin = match example_program_dir(layout, example) {
        Some(_) => {
            build_static(layout, &layout.examples_dir(), &["--package", &package])?;
            Some(layout.static_binary(&package))
        }
        None => None,
    };
    let c = build_c(layout, example)?;
    println!("static Linux programs built in {}", ui::secs(t.elapsed()));
    Ok(Programs {
        init: layout.static_binary("vmmcall-init"),
        tool: layout.static_binary("vmmcall"),
        example: example_bin,
        c,
    })
}

/// The commands init runs for an example without a PROGRAM:
/// `examples/NAME/linux/run.txt`, one command per line (words separated by
/// blanks; `#` starts a comment line; a leading `!` means the command must
/// fail), or, without the file, the example's Linux program alone.
pub fn run_list(layout: &Layout, example: &str) -> Result<Vec<Vec<String>>> {
    let path = layout.example_linux_dir(example).join("run.txt");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(vec![vec![format!("/bin/{example}-linux")]])
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let commands = parse_run_list(&text);
    if commands.is_empty() {
        bail!("{} names no command", path.display());
    }
    Ok(commands)
}

/// The commands of a `run.txt`.
fn parse_run_list(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// One program in the initramfs: its name in `/bin` and its bytes.
pub struct GuestFile {
    /// The file name under `/bin`.
    pub name: String,
    /// Its contents.
    pub bytes: Vec<u8>,
}

/// The initramfs: `/init`, `/bin/NAME` for each of `bins`, `/dev/console`
/// (so init's output reaches the console without devtmpfs), and
/// `/etc/vmmcall-init` holding the `commands`: one per line, each argv
/// NUL-separated (what `vmmcall-init` reads).
pub fn initramfs(init: Vec<u8>, bins: Vec<GuestFile>, commands: &[Vec<String>]) -> Result<Vec<u8>> {
    let mut i = Initramfs::new();
    i.dir("dev", 0o755)
        .char_device("dev/console", 0o600, 5, 1)
        .dir("bin", 0o755)
        .dir("etc", 0o755)
        .file("init", init, 0o755);
    let mut args = Vec::new();
    for argv in commands {
        for a in argv {
            if a.contains(['\0', '\n']) {
                bail!("a guest command's argument may not hold NUL or a newline: {a:?}");
            }
            args.extend_from_slice(a.as_bytes());
            args.push(0);
        }
        args.push(b'\n');
    }
    i.file("etc/vmmcall-init", args, 0o644);
    for b in bins {
        i.file(&format!("bin/{}", b.name), b.bytes, 0o755);
    }
    i.finish()
}

/// What a prepared Linux run boots.
pub struct Prepared {
    /// The bundle for the VMM.
    pub bundle: PathBuf,
    /// The kernel (for `--compare`).
    pub kernel: PathBuf,
    /// The initramfs (for `--compare`).
    pub initrd: PathBuf,
    /// What the console must show.
    pub expected: Expectations,
    /// The commands init runs in the guest, in order.
    pub commands: Vec<Vec<String>>,
}

impl Prepared {
    /// The commands as a person reads them: `a b; c d`.
    pub fn describe_commands(&self) -> String {
        self.commands
            .iter()
            .map(|c| c.join(" "))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Build the programs, the initramfs and the bundle for `example` running
/// `program` (empty: the example's `linux/run.txt`, or its own Linux
/// program).
///
/// Every initramfs holds `/bin/vmmcall` and the example's programs
/// (`/bin/NAME-linux`, `/bin/STEM-c`), so a PROGRAM that names no file on
/// the host can be one of them: `cargo xtask linux hello -- vmmcall list`.
pub fn prepare(
    layout: &Layout,
    example: &str,
    kernel: &Path,
    program: &[String],
) -> Result<Prepared> {
    let programs = build_programs(layout, example)?;
    let mut bins = vec![GuestFile {
        name: "vmmcall".to_owned(),
        bytes: read(&programs.tool)?,
    }];
    if let Some(bin) = &programs.example {
        bins.push(GuestFile {
            name: format!("{example}-linux"),
            bytes: read(bin)?,
        });
    }
    for (name, path) in &programs.c {
        bins.push(GuestFile {
            name: name.clone(),
            bytes: read(path)?,
        });
    }
    let (commands, expected) = match program.split_first() {
        None => {
            if programs.example.is_none() && programs.c.is_empty() {
                bail!(
                    "example `{example}` has no Linux program (examples/{example}/linux/Cargo.toml): \
                     name one to run, as in `cargo xtask linux {example} -- PROGRAM [ARGS...]`"
                );
            }
            let expect = layout.example_linux_dir(example).join("expect.txt");
            (run_list(layout, example)?, Expectations::load(&expect)?)
        }
        Some((first, rest)) => {
            let host = Path::new(first);
            let argv0 = if host.is_file() {
                let name = host
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "program".to_owned());
                bins.retain(|b| b.name != name);
                bins.push(GuestFile {
                    name: name.clone(),
                    bytes: read(host)?,
                });
                println!("  the guest runs {} as /bin/{name}", host.display());
                format!("/bin/{name}")
            } else {
                println!(
                    "  {first} is no file on the host: the guest runs its own `{first}` from /bin"
                );
                first.clone()
            };
            let argv = std::iter::once(argv0).chain(rest.iter().cloned()).collect();
            (vec![argv], Expectations::default())
        }
    };
    let t = Instant::now();
    let init = read(&programs.init)?;
    let initrd_bytes = initramfs(init, bins, &commands)?;
    let kernel_bytes = read(kernel)?;
    let dir = layout.linux_run_dir(example);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let initrd = dir.join("initrd.gz");
    std::fs::write(&initrd, &initrd_bytes)
        .with_context(|| format!("writing {}", initrd.display()))?;
    let bundle = dir.join("bundle");
    std::fs::write(
        &bundle,
        linux::bundle(&kernel_bytes, &initrd_bytes, CMDLINE, RAM_MIB),
    )
    .with_context(|| format!("writing {}", bundle.display()))?;
    println!(
        "initramfs {} KiB, bundle {} KiB ({} MiB guest RAM, command line `{CMDLINE}`) in {}",
        initrd_bytes.len() / 1024,
        (kernel_bytes.len() + initrd_bytes.len()) / 1024,
        RAM_MIB,
        ui::secs(t.elapsed())
    );
    Ok(Prepared {
        bundle,
        kernel: kernel.to_path_buf(),
        initrd,
        expected,
        commands,
    })
}

/// The boot of `prepared` under `example`'s VMM on `machine`.
pub fn vmm_boot<'a>(
    layout: &'a Layout,
    run_name: &'a str,
    example: &str,
    machine: Machine,
    prepared: &'a Prepared,
    timeout: Duration,
    labelled: bool,
) -> Boot<'a> {
    Boot {
        payload: Payload::Vmm {
            vmm: layout.image(example, Role::Vmm),
            module: prepared.bundle.clone(),
            linux: true,
        },
        layout,
        name: run_name,
        machine,
        timeout,
        expected: &prepared.expected,
        labelled,
    }
}

/// Whether every reason in `reasons` only says that the guest's program
/// exited with a non-zero status (which `cargo xtask linux -- PROGRAM`
/// passes on as its own exit status).
fn only_status(reasons: &[String]) -> bool {
    reasons.iter().all(|r| {
        r.starts_with("the guest exited with status") || r.starts_with("QEMU exit code 35")
    })
}

/// `cargo xtask linux`: returns the process exit status.
pub fn linux(layout: &Layout, args: &LinuxArgs) -> Result<u8> {
    let machine = Machine::select(
        args.emulator,
        args.cpu,
        args.accel,
        crate::qemu::host_kvm_cpu,
    )?
    .with_cpus(args.cpus);
    layout.check_example(&args.example)?;
    setup::ensure(&[machine.emulator.facts().toolset, Toolset::C])?;
    images::build(layout, std::slice::from_ref(&args.example))?;
    let kernel = linux::kernel(layout, args.kernel.as_deref())?;
    let prepared = prepare(layout, &args.example, &kernel, &args.program)?;
    let timeout = args
        .timeout
        .or(prepared.expected.timeout)
        .unwrap_or_else(|| machine.emulator.facts().linux_timeout);
    let run_name = format!("{}-linux", args.example);
    println!(
        "booting Linux ({}) under the {} VMM on {machine}, running {}",
        kernel.display(),
        args.example,
        prepared.describe_commands()
    );
    let with = session::boot(&vmm_boot(
        layout,
        &run_name,
        &args.example,
        machine,
        &prepared,
        timeout,
        false,
    ));
    if args.compare {
        let bare_name = format!("{}-linux-bare", args.example);
        let none = Expectations::default();
        println!("booting the same kernel and initramfs without the VMM on {machine}");
        let without = session::boot(&Boot {
            payload: Payload::Kernel {
                kernel: prepared.kernel.clone(),
                initrd: prepared.initrd.clone(),
                cmdline: CMDLINE.to_owned(),
            },
            layout,
            name: &bare_name,
            machine,
            timeout,
            expected: &none,
            labelled: false,
        });
        print_comparison(machine, &with, &without);
    }
    Ok(exit_status(&with, !args.program.is_empty()))
}

/// The boot-time comparison line(s).
pub fn print_comparison(machine: Machine, with: &Outcome, without: &Outcome) {
    match (with.first_program_line, without.first_program_line) {
        (Some(a), Some(b)) => println!(
            "boot {machine}: program's first line after {} with the VMM, {} without; ratio {:.2}",
            ui::secs(a),
            ui::secs(b),
            a.as_secs_f64() / b.as_secs_f64().max(1e-9)
        ),
        _ => println!(
            "boot {machine}: no comparison (with the VMM: {}, without: {})",
            with.first_program_line
                .map_or("no program line".to_owned(), ui::secs),
            without
                .first_program_line
                .map_or("no program line".to_owned(), ui::secs)
        ),
    }
}

/// The exit status of `cargo xtask linux`: 0 when the run passed; with a
/// PROGRAM of the user's, its own non-zero status when that is all that
/// failed; else 1.
fn exit_status(outcome: &Outcome, user_program: bool) -> u8 {
    match (&outcome.verdict, outcome.status) {
        (Verdict::Pass, _) => 0,
        (Verdict::Fail(reasons), Some(n)) if user_program && n != 0 && only_status(reasons) => {
            u8::try_from(n).unwrap_or(u8::MAX)
        }
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(verdict: Verdict, status: Option<i64>) -> Outcome {
        Outcome {
            crashed_at_start: false,
            first_program_line: None,
            status,
            verdict,
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn exit_status_follows_the_program() {
        assert_eq!(exit_status(&outcome(Verdict::Pass, Some(0)), true), 0);
        let status3 = Verdict::Fail(vec![
            "the guest exited with status 3 (0 means success)".into(),
            "QEMU exit code 35: the VMM reported failure".into(),
        ]);
        assert_eq!(exit_status(&outcome(status3.clone(), Some(3)), true), 3);
        // The example's own program must pass, whatever its status.
        assert_eq!(exit_status(&outcome(status3, Some(3)), false), 1);
        let timeout = Verdict::Fail(vec!["timed out after 60 s".into()]);
        assert_eq!(exit_status(&outcome(timeout, Some(3)), true), 1);
        let big = Verdict::Fail(vec!["the guest exited with status 300".into()]);
        assert_eq!(exit_status(&outcome(big, Some(300)), true), 255);
    }

    #[test]
    fn initramfs_holds_init_program_console_and_argv() {
        let gz = initramfs(
            b"INIT".to_vec(),
            vec![GuestFile {
                name: "hello-linux".into(),
                bytes: b"PROG".to_vec(),
            }],
            &[
                vec!["/bin/hello-linux".to_owned(), "a b".to_owned()],
                vec!["!".to_owned(), "vmmcall".to_owned()],
            ],
        )
        .unwrap();
        let mut raw = Vec::new();
        use std::io::Read;
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .unwrap();
        let text = String::from_utf8_lossy(&raw);
        for name in ["dev/console", "init", "bin/hello-linux", "etc/vmmcall-init"] {
            assert!(text.contains(&format!("{name}\0")), "{name}");
        }
        assert!(
            text.contains("/bin/hello-linux\0a b\0\n!\0vmmcall\0\n"),
            "argv NUL-separated, one command per line"
        );
        let bad = initramfs(Vec::new(), Vec::new(), &[vec!["a\nb".to_owned()]]);
        assert!(bad.is_err(), "a newline would split the command");
    }

    #[test]
    fn run_lists_parse() {
        let text = "# the programs\n/bin/hello-linux\n\n  vmmcall call hello 5 \n! vmmcall call hello_kernel\n";
        assert_eq!(
            parse_run_list(text),
            vec![
                vec!["/bin/hello-linux".to_owned()],
                vec!["vmmcall", "call", "hello", "5"]
                    .into_iter()
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
                vec!["!", "vmmcall", "call", "hello_kernel"]
                    .into_iter()
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            ]
        );
    }

    #[test]
    fn command_line_keeps_the_profile() {
        for word in ["console=ttyS0", "pci=off", "reboot=t", "rdinit=/init"] {
            assert!(CMDLINE.split(' ').any(|w| w == word), "{word}");
        }
    }
}
