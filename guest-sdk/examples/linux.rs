//! A Linux user program that calls the VMM when it is there.
//!
//! Build it statically to run it as `/init` in a Linux guest:
//! `RUSTFLAGS="-C target-feature=+crt-static" cargo build -p guest-sdk --example linux --features std`.
//! Without the VMM it says so and exits 1 instead of dying by SIGILL.

fn main() -> std::process::ExitCode {
    match guest_sdk::detect() {
        Some(vmm) => println!(
            "vmmcall VMM present: ABI v{}, {:?}",
            vmm.abi_version, vmm.instruction
        ),
        None => println!("vmmcall VMM not present"),
    }
    match guest_sdk::call!("hello", rbx = 5) {
        Ok(r) => {
            println!("hello returned {r}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hello failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
