//! `vmmcall`: the vmmcall VMM from the shell of a Linux guest.
//!
//! ```text
//! vmmcall [--json] detect             is the VMM there, which ABI version
//! vmmcall [--json] list               every hypercall: number, name, ring 3 or not
//! vmmcall [--json] call NAME [ARG...] call NAME with up to five integers
//! vmmcall [--json] batch [--stop-on-error] NAME [ARG...] [, NAME [ARG...]]...
//!                                     the calls in one exit (vmmcall_batch)
//! ```
//!
//! `cargo xtask linux` puts it in every initramfs as `/bin/vmmcall`, so
//! `cargo xtask linux hello -- vmmcall list` runs it. Output is aligned
//! for people; with `--json` it is one JSON object per run, for scripts:
//!
//! - `detect`: `{"present":true,"abi_version":1,"instruction":"vmmcall","handlers":4}`,
//!   or `{"present":false}`;
//! - `list`: `{"abi_version":1,"functions":[{"number":0,"name":"get_vmmcall_number","user":true,"builtin":true,"typed":false},...]}`
//!   (`typed`: declared in an interface);
//!   a handler whose name ring 3 may not see has `"name":null`;
//! - `call`: `{"name":"hello","number":2,"args":[5],"rax":"0xa","result":10}`,
//!   or with `"error":"EPERM","errno":1` instead of `"result"`;
//! - `batch`: `{"answered":2,"entries":[{"name":"hello","number":2,"args":[5],"rax":"0xa","result":10},...]}`,
//!   one object per entry as for `call` (entries after a stop have
//!   `"answered":false`). Exit status 1 if any answered entry failed.
//!
//! Arguments are decimal (`5`, `-1`), hexadecimal (`0x10`), octal (`0o17`)
//! or binary (`0b101`); negative numbers are passed in two's complement,
//! as `i64`. Exit status: 0 on success; 1 when the VMM is not there, the
//! name is unknown or the call returns an error; 2 for a usage error.
//!
//! `call` passes integers only, so the handler gets no memory from this
//! program: a handler that takes an address is given the number typed, as
//! a debugger's poke would be.

use std::io::Write;
use std::process::ExitCode;

use guest_sdk::{abi, Error, Instruction};

const USAGE: &str = "\
usage: vmmcall [--json] COMMAND
  detect               whether the vmmcall VMM is there, and its ABI version
  list                 every hypercall: number, name, whether ring 3 may call it
  call NAME [ARG...]   call NAME with up to five integer arguments (RBX, RCX, RDX, RSI, RDI)
  batch [--stop-on-error] NAME [ARG...] [, NAME [ARG...]]...
                       the calls, separated by `,`, in one exit (vmmcall_batch)
  help                 this text
";

/// Wait until the console has sent everything written to it: the VMM
/// prints on the same UART, and a handler's lines would otherwise land in
/// the middle of ours. Harmless when stdout is no terminal.
fn drain_stdout() {
    let _ = std::io::stdout().flush();
    const SYS_IOCTL: u64 = 16;
    const TCSBRK: u64 = 0x5409;
    let _ret: u64;
    // SAFETY: ioctl(1, TCSBRK, 1) is tcdrain(1): it only waits. `syscall`
    // clobbers RCX and R11 and returns in RAX.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") SYS_IOCTL => _ret, in("rdi") 1u64,
                         in("rsi") TCSBRK, in("rdx") 1u64, lateout("rcx") _, lateout("r11") _,
                         options(nostack));
    }
}

/// A JSON string literal for `bytes` (invalid UTF-8 becomes U+FFFD).
fn json_str(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Parse an argument: decimal, `0x` hex, `0o` octal, `0b` binary, or a
/// negative decimal (two's complement).
fn parse_arg(s: &str) -> Option<u64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (radix, digits) = match digits.get(..2) {
        Some("0x" | "0X") => (16, &digits[2..]),
        Some("0o" | "0O") => (8, &digits[2..]),
        Some("0b" | "0B") => (2, &digits[2..]),
        _ => (10, digits),
    };
    let digits = digits.replace('_', "");
    if neg {
        let v = i64::from_str_radix(&format!("-{digits}"), radix).ok()?;
        Some(v as u64)
    } else {
        u64::from_str_radix(&digits, radix).ok()
    }
}

/// The errno's name (`EPERM`), or `errno N` for one the ABI does not name.
fn errno_name(errno: u16) -> String {
    vmmcall::Error::from_errno(errno)
        .map_or_else(|| format!("errno {errno}"), |e| e.name().to_owned())
}

fn instruction_name(i: Instruction) -> &'static str {
    match i {
        Instruction::Vmcall => "vmcall",
        Instruction::Vmmcall => "vmmcall",
    }
}

/// `vmmcall detect`.
fn detect(json: bool) -> ExitCode {
    let Some(vmm) = guest_sdk::detect() else {
        if json {
            println!("{{\"present\":false}}");
        } else {
            println!("present      no (CPUID has no vmmcall-rs signature)");
        }
        return ExitCode::FAILURE;
    };
    let handlers = guest_sdk::handler_count().ok();
    if json {
        println!(
            "{{\"present\":true,\"abi_version\":{},\"instruction\":\"{}\",\"handlers\":{}}}",
            vmm.abi_version,
            instruction_name(vmm.instruction),
            handlers.map_or("null".to_owned(), |n| n.to_string())
        );
    } else {
        println!("present      yes");
        println!("abi_version  {}", vmm.abi_version);
        println!("instruction  {}", instruction_name(vmm.instruction));
        match handlers {
            Some(n) => println!("handlers     {n}"),
            None => println!("handlers     unknown (the VMM does not describe them)"),
        }
    }
    ExitCode::SUCCESS
}

/// One row of `vmmcall list`.
struct Row {
    number: u64,
    /// `None`: a handler ring 3 may not call, whose name is hidden from it.
    name: Option<Vec<u8>>,
    user: bool,
    builtin: bool,
    /// Declared in an interface (`vmmcall_describe`'s typed flag).
    typed: bool,
}

/// `vmmcall list`.
fn list(json: bool) -> ExitCode {
    let Some(vmm) = guest_sdk::detect() else {
        eprintln!("vmmcall: the vmmcall VMM is not present (CPUID has no vmmcall-rs signature)");
        return ExitCode::FAILURE;
    };
    let count = match guest_sdk::handler_count() {
        Ok(n) => n,
        Err(Error::NoSys) => {
            eprintln!("vmmcall: this VMM does not describe its handlers (no vmmcall_describe)");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("vmmcall: counting the handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut rows = vec![Row {
        number: abi::GET_VMMCALL_NUMBER,
        name: Some(abi::GET_VMMCALL_NUMBER_NAME.as_bytes().to_vec()),
        user: true,
        builtin: true,
        typed: false,
    }];
    let mut buf = [0u8; abi::NAME_BUF_LEN];
    for number in 1..=count {
        match guest_sdk::describe(number, &mut buf) {
            Ok(d) => rows.push(Row {
                number,
                name: Some(d.name.to_vec()),
                user: d.user,
                builtin: false,
                typed: d.typed,
            }),
            Err(Error::Permission) => rows.push(Row {
                number,
                name: None,
                user: false,
                builtin: false,
                typed: false,
            }),
            Err(e) => {
                eprintln!("vmmcall: describing function {number}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    rows.push(Row {
        number: abi::DESCRIBE,
        name: Some(abi::DESCRIBE_NAME.as_bytes().to_vec()),
        user: true,
        builtin: true,
        typed: false,
    });
    rows.push(Row {
        number: abi::LOOKUP_TYPED,
        name: Some(abi::LOOKUP_TYPED_NAME.as_bytes().to_vec()),
        user: true,
        builtin: true,
        typed: false,
    });
    if json {
        let items: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{{\"number\":{},\"name\":{},\"user\":{},\"builtin\":{},\"typed\":{}}}",
                    r.number,
                    r.name.as_deref().map_or("null".to_owned(), json_str),
                    r.user,
                    r.builtin,
                    r.typed
                )
            })
            .collect();
        println!(
            "{{\"abi_version\":{},\"functions\":[{}]}}",
            vmm.abi_version,
            items.join(",")
        );
        return ExitCode::SUCCESS;
    }
    let names: Vec<String> = rows
        .iter()
        .map(|r| match &r.name {
            Some(n) => String::from_utf8_lossy(n).into_owned(),
            None => "-".to_owned(),
        })
        .collect();
    let number_w = rows
        .iter()
        .map(|r| r.number.to_string().len())
        .max()
        .unwrap_or(0)
        .max("NUMBER".len());
    let name_w = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max("NAME".len());
    let mut out = String::new();
    out.push_str(&format!(
        "{:>number_w$}  {:<name_w$}  {:<5}  NOTE\n",
        "NUMBER", "NAME", "RING3"
    ));
    for (r, name) in rows.iter().zip(&names) {
        let note = match (r.builtin, &r.name) {
            (true, _) if r.number == abi::GET_VMMCALL_NUMBER => "built-in: name -> number",
            (true, _) if r.number == abi::DESCRIBE => "built-in: describes the handlers",
            (true, _) => "built-in: name + signature -> number",
            (false, None) => "kernel only: name hidden from this ring",
            (false, Some(_)) if !r.user && r.typed => "kernel only; declared in an interface",
            (false, Some(_)) if !r.user => "kernel only",
            (false, Some(_)) if r.typed => "declared in an interface",
            _ => "",
        };
        let line = format!(
            "{:>number_w$}  {:<name_w$}  {:<5}  {note}",
            r.number,
            name,
            if r.user { "yes" } else { "no" }
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    print!("{out}");
    ExitCode::SUCCESS
}

/// `vmmcall call NAME [ARG...]`.
fn call(json: bool, name: &str, args: &[String]) -> ExitCode {
    let mut regs = [0u64; abi::MAX_ARGS];
    if args.len() > abi::MAX_ARGS {
        eprintln!(
            "vmmcall: at most {} arguments ({})",
            abi::MAX_ARGS,
            abi::ARG_REGISTERS.join(", ")
        );
        return ExitCode::from(2);
    }
    for (reg, a) in regs.iter_mut().zip(args) {
        match parse_arg(a) {
            Some(v) => *reg = v,
            None => {
                eprintln!(
                    "vmmcall: `{a}` is not an integer (decimal, 0x hex, 0o octal, 0b binary)"
                );
                return ExitCode::from(2);
            }
        }
    }
    if name.is_empty() || name.len() > abi::MAX_NAME_LEN {
        eprintln!(
            "vmmcall: a hypercall name has 1 to {} bytes",
            abi::MAX_NAME_LEN
        );
        return ExitCode::from(2);
    }
    let mut name_nul = name.as_bytes().to_vec();
    name_nul.push(0);
    let number = match guest_sdk::lookup(&name_nul) {
        Ok(n) => n,
        Err(e) => {
            let (what, why) = match e {
                Error::NotFound => ("ENOENT", format!("no hypercall named `{name}`")),
                Error::NotPresent => ("ENODEV", e.to_string()),
                other => ("EINVAL", other.to_string()),
            };
            if json {
                println!(
                    "{{\"name\":{},\"error\":\"{what}\",\"message\":{}}}",
                    json_str(name.as_bytes()),
                    json_str(why.as_bytes())
                );
            } else {
                eprintln!("vmmcall: {why}");
            }
            return ExitCode::FAILURE;
        }
    };
    drain_stdout();
    // SAFETY: the arguments are the integers the user typed, no address
    // of this program's memory; whatever a handler does with a number it
    // takes for an address is what the user asked for (see the module
    // docs). The VMM is present (lookup found the name).
    let result = unsafe { guest_sdk::call_number(number, regs) };
    let shown: Vec<String> = regs[..args.len()].iter().map(u64::to_string).collect();
    let head = format!(
        "{{\"name\":{},\"number\":{number},\"args\":[{}]",
        json_str(name.as_bytes()),
        shown.join(",")
    );
    match result {
        Ok(v) => {
            if json {
                println!("{head},\"rax\":\"{v:#x}\",\"result\":{v}}}");
            } else {
                println!("{v}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let errno = e.errno().unwrap_or(0);
            let rax = u64::from(errno).wrapping_neg();
            if json {
                println!(
                    "{head},\"rax\":\"{rax:#x}\",\"error\":\"{}\",\"errno\":{errno}}}",
                    errno_name(errno)
                );
            } else {
                let detail = vmmcall::Error::from_errno(errno)
                    .map_or_else(|| format!("errno {errno}"), |e| e.to_string());
                println!("{detail}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The entries of `batch`: words split at `,`, each a name and up to five
/// integers.
fn parse_batch(words: &[String]) -> Result<Vec<(String, Vec<u64>)>, String> {
    let mut entries = Vec::new();
    for part in words.split(|w| w == ",") {
        let Some((name, args)) = part.split_first() else {
            return Err("an empty entry (two commas, or a comma at an end)".into());
        };
        if args.len() > abi::MAX_ARGS {
            return Err(format!("`{name}`: at most {} arguments", abi::MAX_ARGS));
        }
        let args = args
            .iter()
            .map(|a| parse_arg(a).ok_or_else(|| format!("`{a}` is not an integer")))
            .collect::<Result<Vec<u64>, String>>()?;
        entries.push((name.clone(), args));
    }
    if entries.len() as u64 > abi::BATCH_MAX_ENTRIES {
        return Err(format!("at most {} entries", abi::BATCH_MAX_ENTRIES));
    }
    Ok(entries)
}

fn batch(json: bool, words: &[String]) -> ExitCode {
    let (stop_on_error, words) = match words.split_first() {
        Some((first, rest)) if first == "--stop-on-error" => (true, rest),
        _ => (false, words),
    };
    let parsed = match parse_batch(words) {
        Ok(p) => p,
        Err(why) => {
            eprintln!("vmmcall: batch: {why}");
            return ExitCode::from(2);
        }
    };
    let mut entries = Vec::with_capacity(parsed.len());
    for (name, args) in &parsed {
        let mut name_nul = name.as_bytes().to_vec();
        name_nul.push(0);
        let number = match guest_sdk::lookup(&name_nul) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("vmmcall: batch: `{name}`: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut regs = [0u64; abi::MAX_ARGS];
        regs[..args.len()].copy_from_slice(args);
        entries.push(guest_sdk::BatchEntry::new(number, regs));
    }
    let mut results = vec![0u64; entries.len()];
    drain_stdout();
    // SAFETY: as for `call`: the arguments are the integers typed, never
    // an address of this program's memory.
    let answered = match unsafe { guest_sdk::batch(&entries, &mut results, stop_on_error) } {
        Ok(n) => n,
        Err(e) => {
            eprintln!("vmmcall: batch: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    let mut shown = Vec::new();
    for (i, ((name, args), entry)) in parsed.iter().zip(&entries).enumerate() {
        let head = format!(
            "{{\"name\":{},\"number\":{},\"args\":[{}]",
            json_str(name.as_bytes()),
            entry.number,
            args.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        if i >= answered {
            shown.push(format!("{head},\"answered\":false}}"));
            if !json {
                println!("{name}: not run");
            }
            continue;
        }
        let rax = results[i];
        match Error::check(rax) {
            Ok(v) => {
                shown.push(format!("{head},\"rax\":\"{v:#x}\",\"result\":{v}}}"));
                if !json {
                    println!("{name}: {v}");
                }
            }
            Err(e) => {
                failed = true;
                let errno = e.errno().unwrap_or(0);
                shown.push(format!(
                    "{head},\"rax\":\"{rax:#x}\",\"error\":\"{}\",\"errno\":{errno}}}",
                    errno_name(errno)
                ));
                if !json {
                    println!("{name}: {}", errno_name(errno));
                }
            }
        }
    }
    if json {
        println!(
            "{{\"answered\":{answered},\"entries\":[{}]}}",
            shown.join(",")
        );
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    let mut json = false;
    let mut words: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    // Options come before the command; after `call NAME` everything is an
    // argument of the hypercall.
    for a in args.by_ref() {
        match a.as_str() {
            "--json" => json = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            s if s.starts_with("--") => {
                eprint!("vmmcall: unknown option `{s}`\n{USAGE}");
                return ExitCode::from(2);
            }
            _ => {
                words.push(a);
                break;
            }
        }
    }
    words.extend(args);
    let code = match words.first().map(String::as_str) {
        Some("detect") if words.len() == 1 => detect(json),
        Some("list") if words.len() == 1 => list(json),
        Some("call") if words.len() >= 2 => call(json, &words[1], &words[2..]),
        Some("batch") if words.len() >= 2 => batch(json, &words[1..]),
        Some("help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    };
    drain_stdout();
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse_in_every_base() {
        assert_eq!(parse_arg("5"), Some(5));
        assert_eq!(parse_arg("0x10"), Some(16));
        assert_eq!(parse_arg("0o17"), Some(15));
        assert_eq!(parse_arg("0b101"), Some(5));
        assert_eq!(parse_arg("-1"), Some(u64::MAX));
        assert_eq!(parse_arg("-0x10"), Some(-16_i64 as u64));
        assert_eq!(parse_arg("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_arg("1_000"), Some(1000));
        assert_eq!(parse_arg("18446744073709551616"), None);
        assert_eq!(parse_arg("five"), None);
        assert_eq!(parse_arg(""), None);
        assert_eq!(parse_arg("0x"), None);
    }

    #[test]
    fn batch_entries_split_at_commas() {
        let w = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            parse_batch(&w("hello 5 , print , add 0x10 -1")),
            Ok(vec![
                ("hello".into(), vec![5]),
                ("print".into(), vec![]),
                ("add".into(), vec![16, u64::MAX]),
            ])
        );
        assert!(parse_batch(&w("hello , , print")).is_err());
        assert!(parse_batch(&w("hello ,")).is_err());
        assert!(parse_batch(&w("hello 1 2 3 4 5 6")).is_err());
        assert!(parse_batch(&w("hello x")).is_err());
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str(b"hello"), "\"hello\"");
        assert_eq!(json_str(b"a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
        assert_eq!(json_str("ü".as_bytes()), "\"ü\"");
        assert_eq!(json_str(b"\xff"), "\"\u{fffd}\"");
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(1), "EPERM");
        assert_eq!(errno_name(38), "ENOSYS");
        assert_eq!(errno_name(2), "errno 2");
    }
}
