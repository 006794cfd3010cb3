//! Parsing `interface! { pub mod NAME { fn ...; } }` into a [`Decl`]:
//! every misuse is a `syn::Error` on its token, all reported together, and
//! parsing goes on after a bad declaration.

use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, FnArg, Ident, ReturnType, Token, TraitItem, Type, Visibility};

use super::model::{Call, Int, Kind, Param, Ret};
use crate::abi::ARG_REGS;
use crate::errors::Errors;
use crate::names::name_problem;

/// The parsed declaration.
pub(super) struct Decl {
    pub(super) attrs: Vec<Attribute>,
    pub(super) vis: Visibility,
    pub(super) ident: Ident,
    pub(super) calls: Vec<Call>,
    pub(super) errors: Errors,
}

const USAGE: &str =
    "write `vmmcall::interface! { pub mod NAME { #[user] fn hello(arg1: u64) -> u64; ... } }`";

impl Parse for Decl {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        if !input.peek(Token![mod]) {
            return Err(input.error(format!(
                "an interface is declared as a module of hypercalls: {USAGE}"
            )));
        }
        input.parse::<Token![mod]>()?;
        let ident: Ident = input.parse()?;
        let mut errors = Errors::default();
        if ident.unraw() == "vmmcall" {
            errors.spanned(
                &ident,
                "an interface cannot be named `vmmcall`: its C functions (`vmmcall_NAME`) would clash with vmmcall.h",
            );
        }
        let content;
        syn::braced!(content in input);
        for a in &attrs {
            if !a.path().is_ident("doc") {
                errors.spanned(a, "only doc comments may be put on an interface module");
            }
        }
        let mut calls: Vec<Call> = Vec::new();
        while !content.is_empty() {
            let item: TraitItem = content.parse()?;
            let TraitItem::Fn(f) = item else {
                errors.spanned(
                    &item,
                    "an interface holds only hypercall declarations: `fn name(params) -> result;`",
                );
                continue;
            };
            if let Some(body) = &f.default {
                errors.spanned(
                    body,
                    "a hypercall is declared without a body (end it with `;`): the VMM implements it",
                );
            }
            if let Some(call) = parse_call(f.attrs, &f.sig, &mut errors) {
                let upper = call.name.to_ascii_uppercase();
                if let Some(first) = calls
                    .iter()
                    .find(|c| c.name != call.name && c.name.to_ascii_uppercase() == upper)
                {
                    let mut e = syn::Error::new(
                        call.ident.span(),
                        format!(
                            "`{}` and `{}` differ only in case: the C header would define the same {upper}_SIGNATURE twice",
                            first.name, call.name
                        ),
                    );
                    e.combine(syn::Error::new(first.ident.span(), "the other one"));
                    errors.push(e);
                } else if let Some((first, helper)) = c_helper_clash(&calls, &call.name) {
                    let mut e = syn::Error::new(
                        call.ident.span(),
                        format!(
                            "`{}` clashes with a helper of `{}` in the C header: both would define `{}_{}`; rename one",
                            call.name,
                            first.name,
                            ident.unraw(),
                            helper
                        ),
                    );
                    e.combine(syn::Error::new(first.ident.span(), "the other one"));
                    errors.push(e);
                } else if let Some(first) = calls.iter().find(|c| c.name == call.name) {
                    let mut e = syn::Error::new(
                        call.ident.span(),
                        format!("the interface declares `{}` twice", call.name),
                    );
                    e.combine(syn::Error::new(first.ident.span(), "first declared here"));
                    errors.push(e);
                } else {
                    calls.push(call);
                }
            }
        }
        if !input.is_empty() {
            errors.at(input.span(), "one interface module per `interface!`");
        }
        Ok(Decl {
            attrs,
            vis,
            ident,
            calls,
            errors,
        })
    }
}

/// One declaration; `None` if it cannot be used (errors are in `errors`).
/// The C header's helper suffixes (`c_header`): `NAME_number`,
/// `NAME_result` and `NAME_entry` are functions of their own next to
/// `NAME`.
const C_HELPERS: [&str; 3] = ["_number", "_result", "_entry"];

/// A call declared before whose name and `name` give one C function name:
/// one of them is the other's name with a [`C_HELPERS`] suffix. Returns
/// that call and the clashing name (without the module prefix).
fn c_helper_clash<'c>(calls: &'c [Call], name: &str) -> Option<(&'c Call, String)> {
    calls.iter().find_map(|c| {
        C_HELPERS.iter().find_map(|suffix| {
            if name == format!("{}{suffix}", c.name) {
                Some((c, name.to_owned()))
            } else if c.name == format!("{name}{suffix}") {
                Some((c, c.name.clone()))
            } else {
                None
            }
        })
    })
}

fn parse_call(attrs: Vec<Attribute>, sig: &syn::Signature, errors: &mut Errors) -> Option<Call> {
    let mut ok = true;
    let mut bad = |errors: &mut Errors, tokens: &dyn quote::ToTokens, msg: &str| {
        errors.spanned(tokens.to_token_stream(), msg);
        ok = false;
    };
    let mut user = false;
    let mut long = false;
    let mut docs = Vec::new();
    for a in attrs {
        if a.path().is_ident("doc") {
            docs.push(a);
        } else if a.path().is_ident("user") {
            if !matches!(a.meta, syn::Meta::Path(_)) {
                bad(errors, &a, "`#[user]` takes no value");
            } else if user {
                bad(errors, &a, "`#[user]` is given twice");
            }
            user = true;
        } else if a.path().is_ident("long") {
            if !matches!(a.meta, syn::Meta::Path(_)) {
                bad(errors, &a, "`#[long]` takes no value");
            } else if long {
                bad(errors, &a, "`#[long]` is given twice");
            }
            long = true;
        } else {
            bad(
                errors,
                &a,
                "the attributes of a declared hypercall are doc comments, `#[user]` (callable from any CPL) and `#[long]` (works in steps)",
            );
        }
    }
    if let Some(t) = &sig.constness {
        bad(errors, t, "a hypercall cannot be `const`");
    }
    if let Some(t) = &sig.asyncness {
        bad(errors, t, "a hypercall cannot be `async`");
    }
    if let Some(t) = &sig.unsafety {
        bad(errors, t, "a declared hypercall cannot be `unsafe`: its stubs are safe because the declaration says what each register is");
    }
    if let Some(t) = &sig.abi {
        bad(
            errors,
            t,
            "a hypercall cannot have an `extern` ABI: the register ABI is generated",
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        bad(errors, &sig.generics, "a hypercall cannot be generic");
    }
    if let Some(v) = &sig.variadic {
        bad(errors, v, "a hypercall cannot be variadic");
    }
    let name = sig.ident.unraw().to_string();
    if let Some(msg) = name_problem(&name) {
        bad(errors, &sig.ident, &msg);
    } else if name.starts_with("__vmmcall") {
        bad(
            errors,
            &sig.ident,
            "names starting with `__vmmcall` are reserved for the generated code",
        );
    }

    let mut params = Vec::new();
    let mut registers = 0usize;
    for input in &sig.inputs {
        let pt = match input {
            FnArg::Receiver(r) => {
                bad(errors, r, "a hypercall takes no `self`");
                continue;
            }
            FnArg::Typed(pt) => pt,
        };
        if let Some(a) = pt.attrs.first() {
            bad(
                errors,
                a,
                "a declared parameter takes no attributes: each one is a register on both sides",
            );
            continue;
        }
        let ident = match &*pt.pat {
            syn::Pat::Ident(p)
                if p.by_ref.is_none() && p.mutability.is_none() && p.subpat.is_none() =>
            {
                p.ident.clone()
            }
            other => {
                bad(
                    errors,
                    other,
                    "a declared parameter is a plain name: `name: type`",
                );
                continue;
            }
        };
        if ident.unraw().to_string().starts_with("__vmmcall") {
            bad(
                errors,
                &ident,
                "names starting with `__vmmcall` are reserved for the generated code",
            );
            continue;
        }
        match param_kind(&pt.ty) {
            Ok(kind) => {
                registers = registers.saturating_add(kind.registers());
                params.push(Param {
                    ident,
                    kind,
                    ty: (*pt.ty).clone(),
                });
            }
            Err(msg) => bad(errors, &pt.ty, &msg),
        }
    }
    if registers > ARG_REGS.len() {
        bad(
            errors,
            &sig.inputs,
            &format!(
                "these parameters need {registers} registers; a hypercall has five ({}): integers and bool take one, a buffer two (address, length)",
                ARG_REGS.join(", ")
            ),
        );
    }
    let ret = match &sig.output {
        ReturnType::Default => Some(Ret::Unit),
        ReturnType::Type(_, ty) => match ret_kind(ty) {
            Ok(r) => Some(r),
            Err(msg) => {
                bad(errors, ty, &msg);
                None
            }
        },
    };
    match (ok, ret) {
        (true, Some(ret)) => Some(Call {
            docs,
            user,
            long,
            ident: sig.ident.clone(),
            name,
            params,
            ret,
        }),
        _ => None,
    }
}

/// The single identifier of a plain type path (`u64`), if it is one.
fn plain_ident(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) if p.qself.is_none() && p.path.leading_colon.is_none() => {
            let [seg] = p.path.segments.iter().collect::<Vec<_>>()[..] else {
                return None;
            };
            seg.arguments.is_empty().then(|| seg.ident.to_string())
        }
        Type::Paren(p) => plain_ident(&p.elem),
        Type::Group(g) => plain_ident(&g.elem),
        _ => None,
    }
}

const PARAM_TYPES: &str = "a declared parameter is u8, u16, u32, u64, i8, i16, i32, i64, bool, `&[u8]` (a buffer the VMM reads) or `&mut [u8]` (a buffer the VMM writes)";

fn param_kind(ty: &Type) -> Result<Kind, String> {
    if let Type::Reference(r) = ty {
        if r.lifetime.is_some() {
            return Err("a declared buffer takes no lifetime: write `&[u8]` or `&mut [u8]`".into());
        }
        let is_bytes =
            matches!(&*r.elem, Type::Slice(s) if plain_ident(&s.elem).as_deref() == Some("u8"));
        return match (is_bytes, r.mutability.is_some()) {
            (true, false) => Ok(Kind::In),
            (true, true) => Ok(Kind::Out),
            (false, _) => Err(format!(
                "a buffer is declared as bytes, `&[u8]` or `&mut [u8]`; {PARAM_TYPES}"
            )),
        };
    }
    match plain_ident(ty).as_deref() {
        Some("bool") => Ok(Kind::Bool),
        Some("usize") | Some("isize") => Err(
            "declare a fixed width (u64 or i64): the interface is also a C header, where `usize` has no one type".into(),
        ),
        Some(s) => Int::from_name(s)
            .map(Kind::Int)
            .ok_or_else(|| PARAM_TYPES.to_string()),
        None => Err(PARAM_TYPES.to_string()),
    }
}

fn ret_kind(ty: &Type) -> Result<Ret, String> {
    if matches!(ty, Type::Tuple(t) if t.elems.is_empty()) {
        return Ok(Ret::Unit);
    }
    match plain_ident(ty).as_deref() {
        Some("bool") => Ok(Ret::Bool),
        Some(s) => match Int::from_name(s) {
            Some(i) if i.signed() => Err("a hypercall cannot return a signed integer: a negative result would read as -errno in RAX; return an unsigned type".into()),
            Some(i) => Ok(Ret::Int(i)),
            None => Err(RET_TYPES.into()),
        },
        None => Err(RET_TYPES.into()),
    }
}

const RET_TYPES: &str = "a declared result is (), bool, u8, u16, u32 or u64 (errors come back as Result's Err on both sides)";

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::TokenStream as TokenStream2;
    use quote::quote;

    fn errors(input: TokenStream2) -> Vec<String> {
        let decl: Decl = match syn::parse2(input) {
            Ok(d) => d,
            Err(e) => return e.into_iter().map(|e| e.to_string()).collect(),
        };
        match decl.errors.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn misuse_is_reported_on_the_token() {
        let errs = errors(quote! {
            mod m {
                #[user = 1]
                fn a(x: usize);
                fn b(x: String) -> i32;
                fn c(x: &str);
                fn d(a: &[u8], b: &mut [u8], c: u8);
                fn e() { }
                fn f<T>(x: T);
                fn get_vmmcall_number();
                #[inline]
                fn g();
                fn h();
                fn h();
                const X: u8;
            }
        });
        let want = [
            "takes no value",
            "fixed width",
            "a declared parameter is",
            "signed integer",
            "buffer is declared as bytes",
            "need 5 registers",
            "without a body",
            "cannot be generic",
            "a declared parameter is",
            "reserved",
            "doc comments, `#[user]`",
            "declares `h` twice",
            "first declared here",
            "only hypercall declarations",
        ];
        // "need 5" is fine (exactly five); only more fails: check the list.
        let want: Vec<&str> = want
            .into_iter()
            .filter(|w| *w != "need 5 registers")
            .collect();
        assert_eq!(errs.len(), want.len(), "{errs:#?}");
        for (e, w) in errs.iter().zip(&want) {
            assert!(e.contains(w), "{e:?} should contain {w:?}");
        }
        let errs = errors(quote!(
            mod m {
                fn d(a: &[u8], b: &mut [u8], c: u8, d: u8);
            }
        ));
        assert!(
            errs.len() == 1 && errs[0].contains("need 6 registers"),
            "{errs:?}"
        );
        let errs = errors(quote!(
            mod m {
                fn foo();
                fn FOO();
            }
        ));
        assert!(
            errs.len() == 2 && errs[0].contains("differ only in case"),
            "{errs:?}"
        );
        let errs = errors(quote!(
            mod vmmcall {
                fn x();
            }
        ));
        assert!(
            errs.len() == 1 && errs[0].contains("clash with vmmcall.h"),
            "{errs:?}"
        );
        let errs = errors(quote!(
            mod m {
                fn x(#[cfg(test)] a: u8, __vmmcall_r0: u8);
            }
        ));
        assert!(
            errs.len() == 2 && errs[0].contains("no attributes") && errs[1].contains("reserved"),
            "{errs:?}"
        );
        let errs = errors(quote!(
            struct S;
        ));
        assert!(
            errs.len() == 1 && errs[0].contains("module of hypercalls"),
            "{errs:?}"
        );
    }
}
