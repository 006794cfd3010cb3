//! `crate = PATH`: the generated code names vmmcall through the path the
//! attribute gives (here a re-export in a module, as a VMM crate would
//! offer it; `tests/integration/handlers` proves it from a crate that does
//! not depend on vmmcall at all). Compiles warning-free and registers.
#![deny(warnings, missing_docs, unused)]

mod my_vmm {
    //! A VMM crate that re-exports vmmcall.
    pub use vmmcall as hc;
}

/// Through the re-export.
#[my_vmm::hc::vmmcall("via_reexport", user, crate = my_vmm::hc)]
fn via_reexport(caller: &mut my_vmm::hc::Caller, a: u8) -> u32 {
    u32::from(a) + u32::from(caller.cpl())
}

/// `crate` before `user`, and an absolute path.
#[vmmcall::vmmcall("absolute", crate = ::vmmcall, user)]
fn absolute() {}

// The built-in `exit`, whose macro passes `crate = $crate`.
vmmcall::exit_hypercall!();

fn main() {
    let registry = vmmcall::Registry::global().expect("registry");
    assert_eq!(registry.len(), 3);
    for name in ["via_reexport", "absolute", "exit"] {
        assert!(registry.lookup(name.as_bytes()).is_some(), "{name}");
    }
}
