//! Booting a real Linux kernel as a guest: finding the kernel, building its
//! initramfs and packing both, with the command line, into the bundle the
//! VMM reads.
//!
//! - [`kernel`]: a bzImage given with `--kernel PATH` (checked against the
//!   64-bit boot protocol), or Debian's `linux-image-cloud-amd64`, fetched
//!   once with `apt-get download` and cached below `target/linux-kernel/`;
//! - [`Initramfs`]: a gzip-compressed newc cpio archive built in memory;
//! - [`bundle`]: kernel + initrd + command line in one blob with a 64-byte
//!   header ([`vmm_shared::bundle`]), the layout the VMM side parses.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use flate2::write::GzEncoder;
use flate2::Compression;

use vmm_shared::bundle::{Header, Part};

use crate::paths::Layout;
use crate::setup;
use crate::ui;

/// The Debian metapackage that depends on the current cloud kernel.
const META_PACKAGE: &str = "linux-image-cloud-amd64";

/// The host tools the Debian kernel fetch needs.
const APT_TOOLS: [&str; 3] = ["apt-cache", "apt-get", "dpkg-deb"];

/// `apt-get update` already ran in this process (for the kernel lookup).
static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// The guest kernel: `explicit` after checking that it is a bzImage the
/// 64-bit boot protocol can load, or else Debian's cloud kernel, fetched
/// and cached in `<root>/target/linux-kernel/<package>/vmlinuz`.
///
/// The versioned package (`linux-image-<abi>-cloud-amd64`) is resolved at
/// run time from the metapackage's dependency, so a new Debian kernel ABI
/// lands in a new cache directory. Only that one `.deb` is downloaded; it
/// and its extracted tree are deleted once `vmlinuz` is in place.
pub fn kernel(layout: &Layout, explicit: Option<&Path>) -> Result<PathBuf> {
    match explicit {
        Some(path) => {
            let version = check_kernel_file(path)?;
            println!(
                "using kernel {} (boot protocol {})",
                path.display(),
                protocol(version)
            );
            Ok(path.to_path_buf())
        }
        None => debian_kernel(layout),
    }
}

// ---------------------------------------------------------------------------
// The bzImage header (Documentation/arch/x86/boot.rst).

// Offsets and flags: vmm_shared::bzimage, which the VMM's loader reads
// the same header with.
use vmm_shared::bzimage::{
    HDR_MAGIC, HEADER, LOADED_HIGH, LOADFLAGS, MIN_PROTOCOL, VERSION, XLF_KERNEL_64, XLOADFLAGS,
};
/// How much of a kernel file [`check_boot_header`] needs to see.
const HEADER_BYTES: usize = XLOADFLAGS + 2;

/// A boot protocol version as `2.15`.
fn protocol(version: u16) -> String {
    format!("{}.{:02}", version >> 8, version & 0xff)
}

fn le16(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes([bytes[offset], bytes[offset + 1]])
}

/// Checks the start of a kernel file against what the VMM's 64-bit boot
/// needs; returns the boot protocol version, or which check failed.
fn check_boot_header(bytes: &[u8]) -> std::result::Result<u16, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!(
            "it is {} bytes long, too short for the boot header (which ends at {HEADER_BYTES:#x})",
            bytes.len()
        ));
    }
    if &bytes[HEADER..HEADER + 4] != HDR_MAGIC {
        let hint = if bytes.starts_with(b"\x7fELF") {
            " (it is an ELF file: pass the compressed bzImage, e.g. /boot/vmlinuz-*, \
             not vmlinux)"
        } else {
            ""
        };
        return Err(format!(
            "no \"HdrS\" magic at offset {HEADER:#x}: not a bzImage{hint}"
        ));
    }
    let version = le16(bytes, VERSION);
    if version < MIN_PROTOCOL {
        return Err(format!(
            "boot protocol {} (at offset {VERSION:#x}) is older than the required {}",
            protocol(version),
            protocol(MIN_PROTOCOL)
        ));
    }
    if le16(bytes, XLOADFLAGS) & XLF_KERNEL_64 == 0 {
        return Err(format!(
            "xloadflags (at offset {XLOADFLAGS:#x}) lacks XLF_KERNEL_64 (bit 0): \
             the kernel has no 64-bit entry point (a 32-bit kernel?)"
        ));
    }
    if bytes[LOADFLAGS] & LOADED_HIGH == 0 {
        return Err(format!(
            "loadflags (at offset {LOADFLAGS:#x}) lacks LOADED_HIGH (bit 0): \
             a zImage loaded low, not a bzImage"
        ));
    }
    Ok(version)
}

/// Checks that `path` is a file whose header passes [`check_boot_header`].
fn check_kernel_file(path: &Path) -> Result<u16> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("kernel {} does not exist", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("reading kernel {}", path.display())),
    };
    if !meta.is_file() {
        bail!("kernel {} is not a regular file", path.display());
    }
    let mut header = Vec::with_capacity(HEADER_BYTES);
    fs::File::open(path)
        .and_then(|f| f.take(HEADER_BYTES as u64).read_to_end(&mut header))
        .with_context(|| format!("reading kernel {}", path.display()))?;
    check_boot_header(&header).map_err(|reason| {
        anyhow::anyhow!(
            "kernel {} cannot be booted with the 64-bit Linux boot protocol: {reason}",
            path.display()
        )
    })
}

// ---------------------------------------------------------------------------
// Debian's cloud kernel.

/// The versioned kernel package in `apt-cache depends` output: the first
/// `Depends:` (or `|Depends:`, an alternative) line naming a real
/// `linux-image-*` package other than the metapackage itself.
fn parse_depends(output: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let line = line.trim_start();
        let line = line.strip_prefix('|').unwrap_or(line);
        let name = line.strip_prefix("Depends:")?.trim();
        let valid = name.starts_with("linux-image-")
            && name != META_PACKAGE
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
        valid.then(|| name.to_owned())
    })
}

/// The cache directory of one versioned kernel package.
fn cache_dir(layout: &Layout, package: &str) -> PathBuf {
    layout.kernel_cache_dir(package)
}

/// What a user can run instead, for error messages. `package` is the
/// versioned package when it is known.
fn manual_steps(package: Option<&str>) -> String {
    let (lookup, package) = match package {
        Some(p) => (String::new(), p),
        None => (
            format!(
                "    apt-cache depends {META_PACKAGE}   # names linux-image-<abi>-cloud-amd64\n"
            ),
            "linux-image-<abi>-cloud-amd64",
        ),
    };
    let image = package.strip_prefix("linux-image-").unwrap_or(package);
    format!(
        "to fetch the kernel by hand on a Debian host:\n\
         \x20   sudo apt-get update\n\
         {lookup}\
         \x20   apt-get download {package}\n\
         \x20   dpkg-deb -x {package}_*.deb extracted\n\
         then pass `--kernel extracted/boot/vmlinuz-{image}`; or pass any x86-64 \
         bzImage (boot protocol 2.12 or later) with `--kernel PATH`"
    )
}

/// A byte count as MiB with one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// `LC_ALL=C` so the `Depends:` lines and error messages are not
/// translated.
fn apt_command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("LC_ALL", "C")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null());
    cmd
}

/// [`kernel`] without `--kernel`: Debian's cloud kernel, cached.
fn debian_kernel(layout: &Layout) -> Result<PathBuf> {
    let missing: Vec<&str> = APT_TOOLS
        .iter()
        .copied()
        .filter(|tool| setup::find_binary(tool).is_none())
        .collect();
    if !missing.is_empty() {
        bail!(
            "no --kernel given, and the default kernel (Debian's {META_PACKAGE}) needs \
             apt-cache, apt-get and dpkg-deb, but {} {} not on PATH; {}",
            missing.join(", "),
            if missing.len() == 1 { "is" } else { "are" },
            manual_steps(None)
        );
    }
    let root = setup::is_root();
    let start = Instant::now();
    println!("resolving Debian's {META_PACKAGE} ...");
    let package = resolve(root)?;
    println!(
        "  {META_PACKAGE} depends on {package} ({})",
        ui::secs(start.elapsed())
    );
    let dir = cache_dir(layout, &package);
    let vmlinuz = dir.join("vmlinuz");
    if vmlinuz.is_file() {
        match check_kernel_file(&vmlinuz) {
            Ok(_) => {
                println!("using cached kernel {}", vmlinuz.display());
                return Ok(vmlinuz);
            }
            Err(e) => {
                println!("cached kernel is unusable, fetching it again: {e:#}");
                fs::remove_file(&vmlinuz)
                    .with_context(|| format!("removing {}", vmlinuz.display()))?;
            }
        }
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let fetched = fetch(&package, &dir, root);
    // Leftovers of a failed fetch would only confuse the next one.
    clean_partial(&dir);
    match fetched {
        Ok(()) => Ok(vmlinuz),
        Err(e) => Err(e.context(format!(
            "fetching {package} failed{}; {}",
            if root { "" } else { " (not running as root)" },
            manual_steps(Some(&package))
        ))),
    }
}

/// Resolves [`META_PACKAGE`] to its versioned package, running
/// `apt-get update` once when apt knows nothing about it and we are root.
fn resolve(root: bool) -> Result<String> {
    let mut found = apt_cache_depends()?;
    if let Err(stderr) = &found {
        if root && !APT_UPDATED.swap(true, Ordering::SeqCst) {
            println!(
                "  apt-cache knows no {META_PACKAGE}{}: running apt-get update (as root) ...",
                parenthesized(stderr)
            );
            let step = Instant::now();
            let status = apt_command("apt-get")
                .args(["-q", "update"])
                .status()
                .context("starting apt-get update")?;
            if !status.success() {
                bail!("apt-get update failed ({status}); {}", manual_steps(None));
            }
            println!("  apt-get update done in {}", ui::secs(step.elapsed()));
            found = apt_cache_depends()?;
        }
    }
    match found {
        Ok(package) => Ok(package),
        Err(stderr) => bail!(
            "apt-cache does not know which kernel {META_PACKAGE} depends on{}{}; {}",
            parenthesized(&stderr),
            if root {
                ", even after apt-get update: are Debian's main archives in the apt sources?"
            } else {
                " (the package lists may be missing: `sudo apt-get update`)"
            },
            manual_steps(None)
        ),
    }
}

/// ` (text)`, or nothing for an empty `text`.
fn parenthesized(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(" ({text})")
    }
}

/// Runs `apt-cache depends` on the metapackage: `Ok(Ok(package))` when a
/// kernel dependency was found, `Ok(Err(stderr))` when apt-cache does not
/// know it.
fn apt_cache_depends() -> Result<std::result::Result<String, String>> {
    let output = apt_command("apt-cache")
        .args(["depends", META_PACKAGE])
        .output()
        .context("starting apt-cache")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match parse_depends(&stdout) {
        Some(package) if output.status.success() => Ok(Ok(package)),
        _ => Ok(Err(String::from_utf8_lossy(&output.stderr)
            .trim()
            .replace('\n', "; "))),
    }
}

/// Removes what a fetch leaves in `dir` besides `vmlinuz`: the `.deb`, the
/// extracted tree and a half-installed `vmlinuz.tmp`. Best effort.
fn clean_partial(dir: &Path) {
    let _ = fs::remove_dir_all(dir.join("extracted"));
    let _ = fs::remove_file(dir.join("vmlinuz.tmp"));
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "deb") {
                let _ = fs::remove_file(path);
            }
        }
    }
}

/// Downloads `package` into `dir` and installs its kernel as `dir/vmlinuz`.
fn fetch(package: &str, dir: &Path, root: bool) -> Result<()> {
    clean_partial(dir);
    let start = Instant::now();
    println!("fetching {package} (apt-get download) ...");
    let mut download = apt_command("apt-get");
    download.current_dir(dir);
    if root {
        // apt drops to the `_apt` user for downloads, which cannot write
        // into our directory: it would warn and fall back to root anyway.
        download.args(["-o", "APT::Sandbox::User=root"]);
    }
    let status = download
        .args(["-q", "download", package])
        .status()
        .context("starting apt-get download")?;
    if !status.success() {
        bail!("apt-get download {package} failed ({status})");
    }

    let prefix = format!("{package}_");
    let debs: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .collect();
    let [deb] = debs.as_slice() else {
        bail!(
            "apt-get download {package} succeeded but {} holds {} files named {prefix}*.deb, \
             expected one",
            dir.display(),
            debs.len()
        );
    };
    let deb_size = fs::metadata(deb)
        .with_context(|| format!("reading {}", deb.display()))?
        .len();

    let version = apt_command("dpkg-deb")
        .arg("--field")
        .arg(deb)
        .arg("Version")
        .output()
        .context("starting dpkg-deb")?;
    if !version.status.success() {
        bail!(
            "dpkg-deb --field {} Version failed ({}): {}",
            deb.display(),
            version.status,
            String::from_utf8_lossy(&version.stderr).trim()
        );
    }
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();

    let extracted = dir.join("extracted");
    let output = apt_command("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(&extracted)
        .output()
        .context("starting dpkg-deb")?;
    if !output.status.success() {
        bail!(
            "dpkg-deb -x {} failed ({}): {}",
            deb.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let boot = extracted.join("boot");
    let kernels: Vec<PathBuf> = fs::read_dir(&boot)
        .with_context(|| format!("listing {} (from {})", boot.display(), deb.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    let [image] = kernels.as_slice() else {
        bail!(
            "{} holds {} files named vmlinuz-*, expected one",
            boot.display(),
            kernels.len()
        );
    };

    // Through vmlinuz.tmp, so an interrupted fetch never leaves a vmlinuz
    // that a later run would take for a cached kernel.
    let tmp = dir.join("vmlinuz.tmp");
    fs::rename(image, &tmp)
        .with_context(|| format!("moving {} to {}", image.display(), tmp.display()))?;
    check_kernel_file(&tmp)?;
    let vmlinuz = dir.join("vmlinuz");
    fs::rename(&tmp, &vmlinuz)
        .with_context(|| format!("moving {} to {}", tmp.display(), vmlinuz.display()))?;
    let size = fs::metadata(&vmlinuz)
        .with_context(|| format!("reading {}", vmlinuz.display()))?
        .len();
    println!(
        "fetched {package} {version} ({} .deb): {} ({}) in {}",
        mib(deb_size),
        vmlinuz.display(),
        mib(size),
        ui::secs(start.elapsed())
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// The initramfs.

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;
const NEWC_MAGIC: &[u8; 6] = b"070701";
const TRAILER: &str = "TRAILER!!!";

#[derive(Clone, Debug)]
struct Entry {
    path: String,
    /// Permission bits as given (checked in `finish`).
    permissions: u32,
    file_type: u32,
    data: Vec<u8>,
    rdev: (u32, u32),
}

/// An initramfs built in memory: directories, files and character devices,
/// in the order they are added, written by [`Initramfs::finish`] as a
/// gzip-compressed newc (`070701`) cpio archive.
///
/// Paths may start with `/` (it is dropped: the archive holds `init`, not
/// `/init`). Modes are permission bits only (`0o755`); the entry type is
/// added by the method. Every parent directory must be added before what
/// it holds, since the kernel's unpacker does not create missing parents.
/// Mistakes (a bad path, a duplicate, a missing parent, type bits in a
/// mode) are reported by `finish`.
#[derive(Clone, Debug, Default)]
pub struct Initramfs {
    entries: Vec<Entry>,
}

impl Initramfs {
    /// An empty archive.
    pub fn new() -> Initramfs {
        Initramfs::default()
    }

    fn push(
        &mut self,
        path: &str,
        permissions: u32,
        file_type: u32,
        data: Vec<u8>,
        rdev: (u32, u32),
    ) -> &mut Initramfs {
        self.entries.push(Entry {
            path: path.to_owned(),
            permissions,
            file_type,
            data,
            rdev,
        });
        self
    }

    /// Adds directory `path` with permissions `mode` (e.g. `0o755`).
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Initramfs {
        self.push(path, mode, S_IFDIR, Vec::new(), (0, 0))
    }

    /// Adds regular file `path` holding `bytes`, with permissions `mode`
    /// (e.g. `0o755` for `init`).
    pub fn file(&mut self, path: &str, bytes: impl Into<Vec<u8>>, mode: u32) -> &mut Initramfs {
        self.push(path, mode, S_IFREG, bytes.into(), (0, 0))
    }

    /// Adds character device `path` (`major`:`minor`, e.g. 5:1 for
    /// `dev/console`) with permissions `mode` (e.g. `0o600`).
    pub fn char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> &mut Initramfs {
        self.push(path, mode, S_IFCHR, Vec::new(), (major, minor))
    }

    /// The gzip-compressed cpio archive, ending with the `TRAILER!!!` entry.
    pub fn finish(self) -> Result<Vec<u8>> {
        let cpio = self.cpio()?;
        let mut gz = GzEncoder::new(Vec::with_capacity(cpio.len() / 2), Compression::default());
        gz.write_all(&cpio)
            .and_then(|()| gz.finish())
            .context("gzip-compressing the initramfs")
    }

    /// The uncompressed archive.
    fn cpio(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut dirs: Vec<&str> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for (index, entry) in self.entries.iter().enumerate() {
            let path = entry.path.trim_start_matches('/');
            if path.is_empty()
                || path.contains('\0')
                || path
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == "..")
            {
                bail!(
                    "initramfs: invalid path {:?} (needs non-empty components, no `.`, `..` \
                     or NUL)",
                    entry.path
                );
            }
            if seen.contains(&path) {
                bail!("initramfs: {path} is added twice");
            }
            if let Some((parent, _)) = path.rsplit_once('/') {
                if !dirs.contains(&parent) {
                    bail!(
                        "initramfs: the parent directory of {path} must be added (with dir) \
                         before it"
                    );
                }
            }
            if entry.permissions & !0o7777 != 0 {
                bail!(
                    "initramfs: mode {:#o} of {path} has bits outside 0o7777: pass permission \
                     bits only, the entry type comes from the method",
                    entry.permissions
                );
            }
            let Ok(size) = u32::try_from(entry.data.len()) else {
                bail!(
                    "initramfs: {path} is {} bytes, more than newc cpio can hold",
                    entry.data.len()
                );
            };
            let Ok(ino) = u32::try_from(index + 1) else {
                bail!("initramfs: too many entries");
            };
            let is_dir = entry.file_type == S_IFDIR;
            let header = NewcHeader {
                ino,
                mode: entry.file_type | entry.permissions,
                nlink: if is_dir { 2 } else { 1 },
                filesize: size,
                rdev: entry.rdev,
            };
            header.write(&mut out, path);
            out.extend_from_slice(&entry.data);
            pad4(&mut out);
            seen.push(path);
            if is_dir {
                dirs.push(path);
            }
        }
        NewcHeader {
            ino: 0,
            mode: 0,
            nlink: 1,
            filesize: 0,
            rdev: (0, 0),
        }
        .write(&mut out, TRAILER);
        Ok(out)
    }
}

/// The fields of a newc header that are not always zero (uid, gid, mtime,
/// devmajor/devminor and check are).
struct NewcHeader {
    ino: u32,
    mode: u32,
    nlink: u32,
    filesize: u32,
    rdev: (u32, u32),
}

impl NewcHeader {
    /// Appends the 110-byte header, `name`, its NUL and the padding to a
    /// multiple of 4 (`out` starts 4-byte aligned).
    fn write(&self, out: &mut Vec<u8>, name: &str) {
        // `name` is a checked path or the trailer: far shorter than 4 GiB.
        let namesize = name.len() as u32 + 1;
        out.extend_from_slice(NEWC_MAGIC);
        for field in [
            self.ino,
            self.mode,
            0, // uid
            0, // gid
            self.nlink,
            0, // mtime
            self.filesize,
            0, // devmajor
            0, // devminor
            self.rdev.0,
            self.rdev.1,
            namesize,
            0, // check
        ] {
            out.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        pad4(out);
    }
}

fn pad4(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(4), 0);
}

// ---------------------------------------------------------------------------
// The bundle.

/// Packs a Linux boot for the VMM: the header ([`vmm_shared::bundle`],
/// which documents the layout and which the VMM parses), then the kernel
/// (the bzImage file as is), the initrd and the command line, each at a
/// 4096-byte-aligned offset with zero padding between them; the command
/// line is followed by one NUL byte, which ends the bundle. An empty part
/// still gets its aligned offset (it may equal the next part's). `cmdline`
/// should hold no NUL: the kernel stops at the first.
pub fn bundle(kernel: &[u8], initrd: &[u8], cmdline: &str, ram_mib: u32) -> Vec<u8> {
    let h = Header::layout(kernel.len(), initrd.len(), cmdline.len(), ram_mib);
    let at = |p: Part| p.offset as usize;
    let mut out = Vec::with_capacity(at(h.cmdline) + cmdline.len() + 1);
    out.extend_from_slice(&h.to_bytes());
    out.resize(at(h.kernel), 0);
    out.extend_from_slice(kernel);
    out.resize(at(h.initrd), 0);
    out.extend_from_slice(initrd);
    out.resize(at(h.cmdline), 0);
    out.extend_from_slice(cmdline.as_bytes());
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // --- apt-cache depends ---

    #[test]
    fn depends_plain() {
        let out = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-57-cloud-amd64\n";
        assert_eq!(
            parse_depends(out).as_deref(),
            Some("linux-image-6.1.0-57-cloud-amd64")
        );
    }

    #[test]
    fn depends_alternatives_and_other_lines() {
        let out = "linux-image-cloud-amd64\n\
                   \x20 PreDepends: dpkg\n\
                   \x20 Depends: <linux-kbuild>\n\
                   \x20 |Depends: linux-image-6.1.0-58-cloud-amd64\n\
                   \x20 Depends: linux-image-6.1.0-57-cloud-amd64\n\
                   \x20 Recommends: firmware-linux-free\n\
                   \x20 Breaks: linux-image-6.1.0-1-cloud-amd64\n";
        assert_eq!(
            parse_depends(out).as_deref(),
            Some("linux-image-6.1.0-58-cloud-amd64")
        );
        let out = "linux-image-cloud-amd64\n  Suggests: linux-doc\n  Breaks: linux-image-x\n  \
                   Depends: initramfs-tools\n  Depends: linux-image-6.12.9+bpo-cloud-amd64\n";
        assert_eq!(
            parse_depends(out).as_deref(),
            Some("linux-image-6.12.9+bpo-cloud-amd64")
        );
    }

    #[test]
    fn depends_rejects_nothing_useful() {
        assert_eq!(parse_depends(""), None);
        assert_eq!(parse_depends("linux-image-cloud-amd64\n"), None);
        assert_eq!(
            parse_depends("x\n  Depends: linux-image-cloud-amd64\n"),
            None
        );
        assert_eq!(parse_depends("x\n  Depends: <linux-image-virtual>\n"), None);
        assert_eq!(parse_depends("x\n  Depends: linux-image-../../x\n"), None);
        // The first line (the package itself) never counts.
        assert_eq!(parse_depends("linux-image-6.1.0-57-cloud-amd64\n"), None);
    }

    #[test]
    fn manual_steps_name_the_commands() {
        let known = manual_steps(Some("linux-image-6.1.0-57-cloud-amd64"));
        assert!(
            known.contains("apt-get download linux-image-6.1.0-57-cloud-amd64\n"),
            "{known}"
        );
        assert!(
            known.contains("dpkg-deb -x linux-image-6.1.0-57-cloud-amd64_*.deb extracted"),
            "{known}"
        );
        assert!(
            known.contains("--kernel extracted/boot/vmlinuz-6.1.0-57-cloud-amd64`"),
            "{known}"
        );
        assert!(known.contains("--kernel PATH"), "{known}");
        let unknown = manual_steps(None);
        assert!(
            unknown.contains("apt-cache depends linux-image-cloud-amd64"),
            "{unknown}"
        );
        assert!(unknown.contains("--kernel PATH"), "{unknown}");
    }

    #[test]
    fn cache_dir_is_per_package() {
        let layout = Layout {
            root: PathBuf::from("/r"),
        };
        assert_eq!(
            cache_dir(&layout, "linux-image-6.1.0-57-cloud-amd64"),
            PathBuf::from("/r/target/linux-kernel/linux-image-6.1.0-57-cloud-amd64")
        );
    }

    // --- bzImage header ---

    fn bzimage(version: u16, loadflags: u8, xloadflags: u16) -> Vec<u8> {
        let mut b = vec![0u8; 0x1000];
        b[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x206..0x208].copy_from_slice(&version.to_le_bytes());
        b[0x211] = loadflags;
        b[0x236..0x238].copy_from_slice(&xloadflags.to_le_bytes());
        b
    }

    #[test]
    fn header_accepts_a_64_bit_bzimage() {
        assert_eq!(check_boot_header(&bzimage(0x020f, 0x81, 0x7f)), Ok(0x020f));
        assert_eq!(check_boot_header(&bzimage(0x020c, 0x01, 0x01)), Ok(0x020c));
        // Exactly the bytes the check needs.
        assert!(check_boot_header(&bzimage(0x020f, 1, 1)[..0x238]).is_ok());
    }

    #[test]
    fn header_names_the_failed_check() {
        let err = |b: &[u8]| check_boot_header(b).unwrap_err();
        assert!(err(&[0u8; 0x237]).contains("too short"));
        let mut no_magic = bzimage(0x020f, 1, 1);
        no_magic[0x205] = b'Z';
        assert!(err(&no_magic).contains("HdrS"));
        let mut elf = no_magic.clone();
        elf[..4].copy_from_slice(b"\x7fELF");
        assert!(err(&elf).contains("ELF"));
        let old = err(&bzimage(0x020b, 1, 1));
        assert!(old.contains("2.11") && old.contains("2.12"), "{old}");
        assert!(err(&bzimage(0x020f, 1, 0x7e)).contains("XLF_KERNEL_64"));
        assert!(err(&bzimage(0x020f, 0x80, 1)).contains("LOADED_HIGH"));
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-linux-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn explicit_kernel_is_checked() {
        let dir = scratch("explicit");
        let layout = Layout { root: dir.clone() };
        let good = dir.join("good");
        fs::write(&good, bzimage(0x020f, 1, 1)).unwrap();
        assert_eq!(kernel(&layout, Some(&good)).unwrap(), good);

        let bad = dir.join("bad");
        fs::write(&bad, bzimage(0x020f, 1, 0)).unwrap();
        let msg = format!("{:#}", kernel(&layout, Some(&bad)).unwrap_err());
        assert!(
            msg.contains(&bad.display().to_string()) && msg.contains("XLF_KERNEL_64"),
            "{msg}"
        );

        let missing = dir.join("missing");
        let msg = format!("{:#}", kernel(&layout, Some(&missing)).unwrap_err());
        assert!(
            msg.contains(&missing.display().to_string()) && msg.contains("does not exist"),
            "{msg}"
        );

        let msg = format!("{:#}", kernel(&layout, Some(&dir)).unwrap_err());
        assert!(msg.contains("not a regular file"), "{msg}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The real thing: resolves and downloads Debian's cloud kernel into a
    /// scratch project root, then finds it cached. Needs apt and the
    /// network: `cargo test -p xtask linux -- --ignored`.
    #[test]
    #[ignore]
    fn fetches_debian_kernel() {
        let dir = scratch("fetch");
        let layout = Layout { root: dir.clone() };
        let first = kernel(&layout, None).unwrap();
        assert!(first.ends_with("vmlinuz"));
        assert!(check_kernel_file(&first).is_ok());
        let left: Vec<_> = fs::read_dir(first.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["vmlinuz"]);
        assert_eq!(kernel(&layout, None).unwrap(), first);
        fs::remove_dir_all(&dir).unwrap();
    }

    // --- initramfs ---

    /// One parsed newc entry.
    #[derive(Debug)]
    struct Parsed {
        name: String,
        fields: [u32; 13],
        data: Vec<u8>,
        header_offset: usize,
        data_offset: usize,
    }

    /// An independent newc reader: every entry up to and including the
    /// trailer, and the bytes after it.
    fn parse_newc(archive: &[u8]) -> (Vec<Parsed>, usize) {
        let mut entries = Vec::new();
        let mut at = 0;
        loop {
            assert_eq!(at % 4, 0, "header at {at} is not 4-byte aligned");
            let header = &archive[at..at + 110];
            assert_eq!(&header[..6], b"070701");
            let mut fields = [0u32; 13];
            for (i, f) in fields.iter_mut().enumerate() {
                let hex = std::str::from_utf8(&header[6 + 8 * i..14 + 8 * i]).unwrap();
                *f = u32::from_str_radix(hex, 16).unwrap();
            }
            let namesize = fields[11] as usize;
            let name_bytes = &archive[at + 110..at + 110 + namesize];
            assert_eq!(name_bytes.last(), Some(&0), "name is NUL-terminated");
            let name = std::str::from_utf8(&name_bytes[..namesize - 1])
                .unwrap()
                .to_owned();
            let mut data_offset = at + 110 + namesize;
            assert!(archive[data_offset..(data_offset + 3) & !3]
                .iter()
                .all(|&b| b == 0));
            data_offset = (data_offset + 3) & !3;
            let size = fields[6] as usize;
            let data = archive[data_offset..data_offset + size].to_vec();
            let end = data_offset + size;
            assert!(archive[end..(end + 3) & !3].iter().all(|&b| b == 0));
            let trailer = name == "TRAILER!!!";
            entries.push(Parsed {
                name,
                fields,
                data,
                header_offset: at,
                data_offset,
            });
            at = (end + 3) & !3;
            if trailer {
                return (entries, archive.len() - end);
            }
        }
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn initramfs_round_trips() {
        let init = b"#!/bin/sh\necho hello\n".to_vec();
        let mut fs = Initramfs::new();
        fs.dir("/dev", 0o755)
            .char_device("/dev/console", 0o600, 5, 1)
            .dir("bin", 0o755)
            .file("bin/x", b"abc".as_slice(), 0o644)
            .file("/init", init.clone(), 0o755)
            .file("empty", Vec::new(), 0o600);
        let gz = fs.finish().unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
        let cpio = gunzip(&gz);
        let (entries, after_trailer) = parse_newc(&cpio);
        assert!(after_trailer < 4, "{after_trailer} bytes after the trailer");
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dev",
                "dev/console",
                "bin",
                "bin/x",
                "init",
                "empty",
                "TRAILER!!!"
            ]
        );
        for (i, e) in entries[..6].iter().enumerate() {
            assert_eq!(e.fields[0], i as u32 + 1, "{}: sequential inode", e.name);
            assert_eq!(e.fields[2], 0, "uid");
            assert_eq!(e.fields[3], 0, "gid");
            assert_eq!(e.fields[5], 0, "mtime");
            assert_eq!(e.fields[12], 0, "check");
            assert_eq!(e.data_offset % 4, 0, "{}: data aligned", e.name);
            assert_eq!(e.header_offset % 4, 0);
        }
        let modes: Vec<u32> = entries.iter().map(|e| e.fields[1]).collect();
        assert_eq!(
            modes,
            [0o040755, 0o020600, 0o040755, 0o100644, 0o100755, 0o100600, 0]
        );
        let nlinks: Vec<u32> = entries.iter().map(|e| e.fields[4]).collect();
        assert_eq!(nlinks, [2, 1, 2, 1, 1, 1, 1]);
        let console = &entries[1];
        assert_eq!((console.fields[9], console.fields[10]), (5, 1), "rdev 5:1");
        assert_eq!(console.fields[6], 0);
        assert_eq!(entries[3].data, b"abc");
        assert_eq!(entries[4].data, init);
        assert_eq!(entries[4].fields[6] as usize, init.len());
        assert!(entries[5].data.is_empty());
        let trailer = &entries[6];
        assert_eq!(trailer.fields[0], 0);
        assert_eq!(trailer.fields[11], 11, "namesize includes the NUL");
    }

    #[test]
    fn initramfs_alignment_for_every_name_and_size() {
        // Names of 1..=8 bytes and sizes of 0..=8 bytes cover every padding.
        let mut fs = Initramfs::new();
        for n in 1..=8 {
            for size in 0..=8 {
                let name = format!("{}{}", "n".repeat(n), size);
                fs.file(&name, vec![0xa5; size], 0o644);
            }
        }
        let cpio = gunzip(&fs.finish().unwrap());
        let (entries, _) = parse_newc(&cpio);
        assert_eq!(entries.len(), 8 * 9 + 1);
        for e in &entries[..72] {
            let size: usize = e.name[e.name.len() - 1..].parse().unwrap();
            assert_eq!(e.data, vec![0xa5; size], "{}", e.name);
        }
        assert_eq!(cpio.len() % 4, 0);
    }

    #[test]
    fn empty_initramfs_is_just_the_trailer() {
        let cpio = gunzip(&Initramfs::new().finish().unwrap());
        let (entries, _) = parse_newc(&cpio);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, "TRAILER!!!");
    }

    #[test]
    fn initramfs_reports_mistakes() {
        let err = |fs: Initramfs| format!("{:#}", fs.finish().unwrap_err());
        let mut fs = Initramfs::new();
        fs.file("dev/console", Vec::new(), 0o600);
        assert!(err(fs).contains("parent directory of dev/console"));
        let mut fs = Initramfs::new();
        fs.file("bin", Vec::new(), 0o755)
            .file("bin/sh", Vec::new(), 0o755);
        assert!(
            err(fs).contains("parent directory of bin/sh"),
            "a file is no parent"
        );
        let mut fs = Initramfs::new();
        fs.dir("a", 0o755).dir("/a", 0o755);
        assert!(err(fs).contains("added twice"));
        for bad in ["", "/", "a//b", "a/../b", "./a", "a\0b"] {
            let mut fs = Initramfs::new();
            fs.dir("a", 0o755).file(bad, Vec::new(), 0o644);
            assert!(err(fs).contains("invalid path"), "{bad:?}");
        }
        let mut fs = Initramfs::new();
        fs.file("init", Vec::new(), 0o100755);
        assert!(err(fs).contains("0o7777"));
    }

    // --- bundle ---

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], at: usize) -> usize {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize
    }

    #[test]
    fn bundle_layout() {
        let kernel: Vec<u8> = (0..10_000u32).map(|i| i as u8 | 1).collect();
        let initrd = vec![0x5a; 4096];
        let cmdline = "console=ttyS0 rdinit=/init";
        let b = bundle(&kernel, &initrd, cmdline, 256);
        assert_eq!(&b[..8], b"VMMCLNX1");
        assert_eq!(u32_at(&b, 8), 64);
        assert_eq!(u32_at(&b, 12), 256);
        let (ko, kl) = (u64_at(&b, 16), u64_at(&b, 24));
        let (io, il) = (u64_at(&b, 32), u64_at(&b, 40));
        let (co, cl) = (u64_at(&b, 48), u64_at(&b, 56));
        assert_eq!((ko, kl), (4096, kernel.len()));
        assert_eq!((io, il), (16384, initrd.len()));
        assert_eq!((co, cl), (20480, cmdline.len()));
        for offset in [ko, io, co] {
            assert_eq!(offset % 4096, 0);
        }
        assert!(b[64..ko].iter().all(|&x| x == 0), "header padding");
        assert_eq!(&b[ko..ko + kl], kernel.as_slice());
        assert!(b[ko + kl..io].iter().all(|&x| x == 0), "kernel padding");
        assert_eq!(&b[io..io + il], initrd.as_slice());
        assert_eq!(&b[co..co + cl], cmdline.as_bytes());
        assert_eq!(b[co + cl], 0, "NUL-terminated");
        assert_eq!(b.len(), co + cl + 1);
    }

    #[test]
    fn bundle_with_empty_parts() {
        let b = bundle(&[1; 4096], &[], "", 64);
        assert_eq!(u64_at(&b, 16), 4096);
        assert_eq!(u64_at(&b, 32), 8192);
        assert_eq!(u64_at(&b, 40), 0);
        assert_eq!(u64_at(&b, 48), 8192);
        assert_eq!(u64_at(&b, 56), 0);
        assert_eq!(b.len(), 8193);
        assert_eq!(b[8192], 0);
    }
}
