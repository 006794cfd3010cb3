//! No other crate may teach the SDK to turn its own types into addresses.
struct Address(u64);

impl guest_sdk::IntoArg<'static> for Address {
    fn into_arg(self) -> guest_sdk::Arg<'static> {
        guest_sdk::Arg::value(self.0)
    }
}

#[repr(C)]
struct Pair(u8, bool);

impl guest_sdk::Plain for Pair {}

fn main() {}
