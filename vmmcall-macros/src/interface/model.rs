//! What a declared hypercall is, as the ABI sees it: its parameter kinds,
//! its result, its canonical signature text and digest
//! (`vmmcall::abi::signature_digest`), and the doc line that states them.

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::{Attribute, Ident, Type};

use crate::abi::{digest, CANONICAL_PREFIX};

/// An integer parameter type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Int {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
}

impl Int {
    const ALL: [(Int, &'static str); 8] = [
        (Int::U8, "u8"),
        (Int::U16, "u16"),
        (Int::U32, "u32"),
        (Int::U64, "u64"),
        (Int::I8, "i8"),
        (Int::I16, "i16"),
        (Int::I32, "i32"),
        (Int::I64, "i64"),
    ];

    pub(super) fn from_name(s: &str) -> Option<Int> {
        Int::ALL.iter().find(|(_, n)| *n == s).map(|(i, _)| *i)
    }

    pub(super) fn rust(self) -> &'static str {
        Int::ALL
            .iter()
            .find(|(i, _)| *i == self)
            .map_or("u64", |(_, n)| n)
    }

    pub(super) fn c(self) -> &'static str {
        match self {
            Int::U8 => "unsigned char",
            Int::U16 => "unsigned short",
            Int::U32 => "vmmcall_u32",
            Int::U64 => "vmmcall_u64",
            Int::I8 => "signed char",
            Int::I16 => "short",
            Int::I32 => "int",
            Int::I64 => "long long",
        }
    }

    pub(super) fn signed(self) -> bool {
        matches!(self, Int::I8 | Int::I16 | Int::I32 | Int::I64)
    }
}

/// What a parameter is, as the ABI sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    Int(Int),
    Bool,
    /// `&[u8]`: the VMM reads it (address, length).
    In,
    /// `&mut [u8]`: the VMM writes it (address, length).
    Out,
}

impl Kind {
    pub(super) fn registers(self) -> usize {
        match self {
            Kind::In | Kind::Out => 2,
            _ => 1,
        }
    }

    pub(super) fn canonical(self) -> &'static str {
        match self {
            Kind::Int(i) => i.rust(),
            Kind::Bool => "bool",
            Kind::In => "in",
            Kind::Out => "out",
        }
    }
}

/// A declared result type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Ret {
    Unit,
    Bool,
    Int(Int),
}

impl Ret {
    pub(super) fn canonical(self) -> &'static str {
        match self {
            Ret::Unit => "()",
            Ret::Bool => "bool",
            Ret::Int(i) => i.rust(),
        }
    }

    pub(super) fn tokens(self) -> TokenStream2 {
        match self {
            Ret::Unit => quote!(()),
            Ret::Bool => quote!(bool),
            Ret::Int(i) => {
                let id = Ident::new(i.rust(), Span::call_site());
                quote!(#id)
            }
        }
    }
}

pub(super) struct Param {
    pub(super) ident: Ident,
    pub(super) kind: Kind,
    /// The declared type, for spans.
    pub(super) ty: Type,
}

pub(super) struct Call {
    pub(super) docs: Vec<Attribute>,
    pub(super) user: bool,
    pub(super) ident: Ident,
    /// The hypercall name: the function's name without `r#`.
    pub(super) name: String,
    pub(super) params: Vec<Param>,
    pub(super) ret: Ret,
}

impl Call {
    pub(super) fn canonical(&self) -> String {
        let kinds: Vec<&str> = self.params.iter().map(|p| p.kind.canonical()).collect();
        format!(
            "{CANONICAL_PREFIX} {}({})->{} {}",
            self.name,
            kinds.join(","),
            self.ret.canonical(),
            if self.user { "user" } else { "kernel" }
        )
    }

    pub(super) fn digest(&self) -> u64 {
        digest(self.canonical().as_bytes())
    }

    /// The doc line every generated item of this hypercall carries.
    pub(super) fn signature_doc(&self) -> String {
        let canonical = self.canonical();
        let digest = self.digest();
        format!(
            "Declared as `{canonical}`, signature digest `{digest:#018x}`{}.",
            if self.user {
                "; callable from any CPL"
            } else {
                "; CPL 0 only (`-EPERM` elsewhere)"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Call;
    use crate::interface::parse::Decl;
    use proc_macro2::TokenStream as TokenStream2;
    use quote::quote;

    #[test]
    fn canonical_text_and_digest() {
        let decl: Decl = syn::parse2(quote! {
            pub mod demo {
                #[user]
                fn hello(arg1: u64) -> u64;
                fn fill(out: &mut [u8], byte: u8, data: &[u8]);
                fn r#type(flag: bool, x: i16) -> bool;
            }
        })
        .unwrap();
        assert!(decl.errors.finish().is_ok());
        let texts: Vec<String> = decl.calls.iter().map(Call::canonical).collect();
        assert_eq!(
            texts,
            [
                "vmmcall-signature-v1 hello(u64)->u64 user",
                "vmmcall-signature-v1 fill(out,u8,in)->() kernel",
                "vmmcall-signature-v1 type(bool,i16)->bool kernel",
            ]
        );
        // Parameter names are not part of the signature; types, order,
        // the result and `user` are.
        let one = |t: TokenStream2| -> u64 {
            let d: Decl = syn::parse2(quote!(mod m { #t })).unwrap();
            d.calls[0].digest()
        };
        let base = one(quote!(
            fn f(a: u32, b: u8) -> u64;
        ));
        assert_eq!(
            base,
            one(quote!(
                fn f(x: u32, y: u8) -> u64;
            ))
        );
        for other in [
            quote!(
                fn f(a: u8, b: u32) -> u64;
            ),
            quote!(
                fn f(a: u32) -> u64;
            ),
            quote!(
                fn f(a: u32, b: u8) -> u32;
            ),
            quote!(
                #[user]
                fn f(a: u32, b: u8) -> u64;
            ),
            quote!(
                fn g(a: u32, b: u8) -> u64;
            ),
        ] {
            assert_ne!(base, one(other.clone()), "{other}");
        }
    }
}
