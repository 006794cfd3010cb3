//! The hypercall name rules (ABI v1) as the macros check them, for an
//! error on the name's token, and the exported symbol derived from a name
//! that makes two hypercalls with one name fail to build.

use crate::abi::{MAX_NAME_LEN, RESERVED_NAME};

/// Prefix of the per-name symbol that makes duplicate names collide.
pub(crate) const SYMBOL_PREFIX: &str = "__vmmcall_duplicate_hypercall_name__";

/// Why `name` cannot be a hypercall name (ABI v1), if it cannot.
pub(crate) fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("the hypercall name must not be empty".to_string())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!(
            "the hypercall name is {} bytes long; the limit is {MAX_NAME_LEN} bytes",
            name.len()
        ))
    } else if name.contains('\0') {
        Some("the hypercall name must not contain a NUL character (the guest passes it NUL-terminated)".to_string())
    } else if name == RESERVED_NAME {
        Some(format!(
            "`{RESERVED_NAME}` is reserved: it is function 0, which looks names up"
        ))
    } else {
        None
    }
}

/// The exported symbol that makes duplicate names collide at link time.
///
/// Injective: ASCII letters and digits are kept, `_` becomes `__`, every
/// other byte becomes `_` and two upper-case hex digits. After a `_`, the
/// next character tells the two cases apart (`_` or a hex digit), so the
/// encoding can be decoded and two names share a symbol only if equal.
pub(crate) fn unique_symbol(name: &str) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(SYMBOL_PREFIX.len() + name.len() * 3);
    s.push_str(SYMBOL_PREFIX);
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => s.push(char::from(b)),
            b'_' => s.push_str("__"),
            _ => {
                // Writing to a String cannot fail.
                let _ = write!(s, "_{b:02X}");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Decode `unique_symbol` output (the inverse, for the injectivity test).
    fn decode(sym: &str) -> Option<Vec<u8>> {
        let mut rest = sym.strip_prefix(SYMBOL_PREFIX)?.as_bytes();
        let mut out = Vec::new();
        while let Some((&c, tail)) = rest.split_first() {
            if c != b'_' {
                out.push(c);
                rest = tail;
            } else if let Some((b'_', tail)) = tail.split_first() {
                out.push(b'_');
                rest = tail;
            } else {
                let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                rest = tail.get(2..)?;
            }
        }
        Some(out)
    }

    #[test]
    fn name_rules() {
        assert_eq!(name_problem("hello"), None);
        assert_eq!(name_problem("a.b/c-d ü"), None);
        assert_eq!(name_problem(&"x".repeat(255)), None);
        assert!(name_problem("").is_some_and(|m| m.contains("empty")));
        assert!(name_problem(&"x".repeat(256)).is_some_and(|m| m.contains("256 bytes")));
        // Bytes, not characters: 128 two-byte characters are 256 bytes.
        assert!(name_problem(&"é".repeat(128)).is_some_and(|m| m.contains("256 bytes")));
        assert!(name_problem("a\0b").is_some_and(|m| m.contains("NUL")));
        assert!(name_problem("get_vmmcall_number").is_some_and(|m| m.contains("reserved")));
        assert_eq!(name_problem("get_vmmcall_number2"), None);
    }

    #[test]
    fn symbols_are_injective_and_valid() {
        let names = [
            "a_b", "a__b", "a.b", "a_2Eb", "a_2eb", "a__2Eb", "a._", "a_.", "_", "__", "x", "x_",
            "_x", "ü", "_C3_BC", "hello", "HELLO", "a b", "a\tb", "a/b", "a-b", "a-2Db",
        ];
        let syms: Vec<String> = names.iter().map(|n| unique_symbol(n)).collect();
        let distinct: HashSet<&String> = syms.iter().collect();
        assert_eq!(distinct.len(), names.len(), "{syms:?}");
        for (n, s) in names.iter().zip(&syms) {
            assert_eq!(decode(s).as_deref(), Some(n.as_bytes()), "{s}");
            assert!(
                s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{s}"
            );
        }
        assert_eq!(
            unique_symbol("hello"),
            "__vmmcall_duplicate_hypercall_name__hello"
        );
        assert_eq!(unique_symbol("a_b"), format!("{SYMBOL_PREFIX}a__b"));
        assert_eq!(unique_symbol("a__b"), format!("{SYMBOL_PREFIX}a____b"));
        assert_eq!(unique_symbol("a.b"), format!("{SYMBOL_PREFIX}a_2Eb"));
        // Every single byte and every pair of bytes round-trips.
        for a in 1..=255u8 {
            for b in [b'_', b'0', b'A', b'.', 0xff] {
                let name = String::from_utf8_lossy(&[a, b]).into_owned();
                assert_eq!(
                    decode(&unique_symbol(&name)).as_deref(),
                    Some(name.as_bytes())
                );
            }
        }
    }
}
