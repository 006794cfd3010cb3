//! Hypercall names the C header could not keep apart are refused on the
//! later one: a helper's name (`NAME_entry`, `NAME_result`, `NAME_number`)
//! in either order, and names that differ only in case.
vmmcall::interface! {
    pub mod clash {
        fn add(a: u32) -> u64;
        fn add_entry();
        fn fill_result();
        fn fill();
        fn tick();
        fn TICK();
    }
}

fn main() {}
