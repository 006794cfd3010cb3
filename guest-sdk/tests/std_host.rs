//! The `std` build of guest-sdk on a plain Linux host (no vmmcall VMM):
//! detection says "absent" by CPUID alone, and calls fail with
//! `Error::NotPresent` instead of executing `vmcall`/`vmmcall` (which here
//! would raise SIGSEGV or SIGILL, or return garbage under another
//! hypervisor).

use guest_sdk::{call, call_unchecked, detect, Error};

#[test]
fn detect_says_absent_on_a_plain_machine() {
    assert_eq!(detect(), None);
}

#[test]
fn calls_fail_cleanly_without_the_vmm() {
    assert_eq!(call!("hello", rbx = 5), Err(Error::NotPresent));
    let mut buf = [0u8; 4];
    // A buffer goes with its length, in the register pair named.
    assert_eq!(
        call!("get_status", (rbx, rcx) = &mut buf),
        Err(Error::NotPresent)
    );
    assert_eq!(
        call!("get_status", rdx = 1u8, (rbx, rcx) = &mut buf[..2]),
        Err(Error::NotPresent)
    );
    let data = [1u8, 2, 3, 4];
    // SAFETY: no VMM: nothing is executed (and `sum` only reads).
    let sum = unsafe { call_unchecked!("sum", rbx = &data, rcx = data.len()) };
    assert_eq!(sum, Err(Error::NotPresent));
    assert_eq!(guest_sdk::lookup(b"hello\0"), Err(Error::NotPresent));
    // SAFETY: no VMM: nothing is executed.
    let direct = unsafe { guest_sdk::call_number(1, [0; 5]) };
    assert_eq!(direct, Err(Error::NotPresent));
    assert_eq!(guest_sdk::handler_count(), Err(Error::NotPresent));
    let mut name = [0u8; 256];
    assert_eq!(guest_sdk::describe(1, &mut name), Err(Error::NotPresent));
    assert_eq!(guest_sdk::describe(0, &mut name), Err(Error::Invalid));
}

#[test]
fn error_is_a_std_error() {
    fn takes(_: &dyn std::error::Error) {}
    takes(&Error::NotPresent);
    let boxed: Box<dyn std::error::Error> = Box::new(Error::Fault);
    assert!(boxed.to_string().contains("EFAULT"));
    assert_eq!(Error::NotFound.to_string(), "no hypercall with this name");
}
