//! Misuse in a declaration is reported on its token, all at once.
vmmcall::interface! {
    pub mod bad {
        fn a(x: usize);
        fn b() -> i64;
        fn c(x: &[u32]);
        fn d(a: &[u8], b: &mut [u8], c: u8, d: u8);
        #[user(yes)]
        fn e();
        fn f() {}
    }
}

fn main() {}
