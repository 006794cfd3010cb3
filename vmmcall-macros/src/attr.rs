//! Parsing the attribute's arguments: `#[vmmcall("name")]`,
//! `#[vmmcall("name", user)]`, `crate = PATH`, and the options
//! `#[vmmcall]` takes on an interface impl. Parsing goes on after a bad
//! argument, so that every problem is reported at once.

use proc_macro2::{Span, TokenStream as TokenStream2};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Token};

use crate::errors::Errors;
use crate::names::name_problem;

/// How the attribute is written, for error messages.
pub(crate) const USAGE: &str = "#[vmmcall(\"name\")] or #[vmmcall(\"name\", user)]";

/// The parsed attribute arguments. Parsing never fails as a whole: every
/// problem lands in `errors` and parsing goes on after the next comma.
pub(crate) struct Args {
    /// `None` if missing or not a string literal (already reported).
    pub(crate) name: Option<LitStr>,
    pub(crate) user: bool,
    /// `crate = PATH`: where the `vmmcall` crate is (default `::vmmcall`).
    pub(crate) krate: Option<syn::Path>,
    pub(crate) errors: Errors,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args {
            name: None,
            user: false,
            krate: None,
            errors: Errors::default(),
        };
        if input.is_empty() {
            args.errors.at(
                Span::call_site(),
                format!("missing hypercall name: write {USAGE}"),
            );
            return Ok(args);
        }
        let mut user_seen: Option<Ident> = None;
        let mut first = true;
        while !input.is_empty() {
            let segment = parse_segment(input)?;
            if first {
                first = false;
                // Point at the comma when the name is missing before it.
                let at = if input.peek(Token![,]) {
                    input.span()
                } else {
                    Span::call_site()
                };
                args.name = parse_name(segment, at, &mut args.errors);
            } else {
                parse_option(segment, &mut user_seen, &mut args.krate, &mut args.errors);
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        args.user = user_seen.is_some();
        Ok(args)
    }
}

/// The tokens up to the next top-level comma.
pub(crate) fn parse_segment(input: ParseStream<'_>) -> syn::Result<TokenStream2> {
    let mut out = TokenStream2::new();
    while !input.is_empty() && !input.peek(Token![,]) {
        let tt: proc_macro2::TokenTree = input.parse()?;
        out.extend([tt]);
    }
    Ok(out)
}

/// The first argument: a plain string literal.
fn parse_name(segment: TokenStream2, empty_at: Span, errors: &mut Errors) -> Option<LitStr> {
    if segment.is_empty() {
        errors.at(
            empty_at,
            format!("missing hypercall name before the comma: write {USAGE}"),
        );
        return None;
    }
    match syn::parse2::<syn::Lit>(segment.clone()) {
        Ok(syn::Lit::Str(s)) if s.suffix().is_empty() => {
            if let Some(msg) = name_problem(&s.value()) {
                errors.at(s.span(), msg);
            }
            Some(s)
        }
        Ok(syn::Lit::Str(s)) => {
            errors.at(
                s.span(),
                "the hypercall name must be a plain string literal, without a suffix",
            );
            None
        }
        Ok(syn::Lit::ByteStr(b)) => {
            errors.at(
                b.span(),
                "the hypercall name must be a string literal (\"...\"), not a byte string",
            );
            None
        }
        Ok(syn::Lit::CStr(c)) => {
            errors.at(c.span(), "the hypercall name must be a string literal (\"...\"), not a C string: the NUL is implied");
            None
        }
        _ => {
            let msg = match syn::parse2::<Ident>(segment.clone()) {
                Ok(id) if id == "user" => {
                    format!("missing hypercall name before `user`: write {USAGE}")
                }
                _ if is_macro_call(&segment) => {
                    "the hypercall name must be a string literal; macros such as `concat!` are not expanded here".to_string()
                }
                _ => format!("the hypercall name must be a string literal: write {USAGE}"),
            };
            errors.spanned(segment, msg);
            None
        }
    }
}

fn is_macro_call(segment: &TokenStream2) -> bool {
    syn::parse2::<syn::ExprMacro>(segment.clone()).is_ok()
}

/// An option after the name: `user`, or `crate = PATH`.
pub(crate) fn parse_option(
    segment: TokenStream2,
    user_seen: &mut Option<Ident>,
    krate: &mut Option<syn::Path>,
    errors: &mut Errors,
) {
    let mut tokens = segment.clone().into_iter();
    let first = tokens.next();
    let rest: TokenStream2 = tokens.collect();
    match first {
        // A trailing comma: `#[vmmcall("x",)]` / `#[vmmcall("x", user,)]`.
        None => {}
        Some(proc_macro2::TokenTree::Ident(id)) if id == "user" => {
            if !rest.is_empty() {
                errors.spanned(rest, "`user` takes no value: write `user` alone");
            } else if user_seen.is_some() {
                errors.at(id.span(), "`user` is given twice");
            } else {
                *user_seen = Some(id);
            }
        }
        Some(proc_macro2::TokenTree::Ident(id)) if id == "crate" => {
            parse_crate_path(&id, rest, krate, errors);
        }
        Some(proc_macro2::TokenTree::Literal(_))
            if syn::parse2::<LitStr>(segment.clone()).is_ok() =>
        {
            errors.spanned(
                segment,
                "a hypercall has exactly one name; the options after it are `user` and `crate = PATH`",
            );
        }
        Some(_) => {
            let shown = match syn::parse2::<Ident>(segment.clone())
                .or_else(|_| syn::parse::Parser::parse2(Ident::parse_any, segment.clone()))
            {
                Ok(id) => format!("unknown option `{id}`"),
                Err(_) => "unknown option".to_string(),
            };
            errors.spanned(
                segment,
                format!("{shown}: the options are `user` (callable from ring 3) and `crate = PATH` (where the vmmcall crate is)"),
            );
        }
    }
}

/// `crate = PATH` after the `crate` keyword: `rest` is `= PATH`.
pub(crate) fn parse_crate_path(
    id: &Ident,
    rest: TokenStream2,
    krate: &mut Option<syn::Path>,
    errors: &mut Errors,
) {
    let usage =
        "write `crate = PATH`, the path of the vmmcall crate (e.g. `crate = my_vmm::vmmcall`)";
    let parsed = syn::parse::Parser::parse2(
        |input: ParseStream<'_>| {
            input.parse::<Token![=]>()?;
            let path = input.call(syn::Path::parse_mod_style)?;
            Ok(path)
        },
        rest.clone(),
    );
    match parsed {
        Ok(path) if krate.is_some() => errors.spanned(path, "`crate` is given twice"),
        Ok(path) => *krate = Some(path),
        Err(_) if rest.is_empty() => errors.at(id.span(), format!("`crate` needs a path: {usage}")),
        Err(_) => errors.spanned(rest, format!("`crate` needs a path: {usage}")),
    }
}

/// The arguments of `#[vmmcall]` on an interface impl: at most `crate =
/// PATH` (the names and `user` come from the declaration). Returns the
/// crate path, if given; misuse lands in `errors`.
pub(crate) fn parse_impl_args(
    attr: TokenStream2,
    errors: &mut Errors,
) -> syn::Result<Option<syn::Path>> {
    let mut krate: Option<syn::Path> = None;
    if !attr.is_empty() {
        let segments = syn::parse::Parser::parse2(
            |input: ParseStream<'_>| {
                syn::punctuated::Punctuated::<TokenStream2, Token![,]>::parse_terminated_with(
                    input,
                    parse_segment,
                )
            },
            attr,
        )?;
        let mut user_seen = None;
        for seg in segments {
            let first = seg.clone().into_iter().next();
            match first {
                Some(proc_macro2::TokenTree::Ident(id)) if id == "crate" => {
                    let rest: TokenStream2 = seg.into_iter().skip(1).collect();
                    parse_crate_path(&id, rest, &mut krate, errors);
                }
                None => {}
                _ if syn::parse2::<LitStr>(seg.clone()).is_ok() => errors.spanned(
                    seg,
                    "on an interface impl, the hypercalls' names come from the interface declaration: write #[vmmcall] alone",
                ),
                _ if syn::parse2::<Ident>(seg.clone()).is_ok_and(|i| i == "user") => errors.spanned(
                    seg,
                    "on an interface impl, `user` comes from the interface declaration (`#[user] fn ...;`)",
                ),
                _ => parse_option(seg, &mut user_seen, &mut krate, errors),
            }
        }
    }
    Ok(krate)
}

#[cfg(test)]
mod tests {
    use crate::tests::errors;
    use quote::quote;

    #[test]
    fn bad_attributes() {
        let f = quote!(
            fn f() {}
        );
        let cases = [
            (quote!(), "missing hypercall name"),
            (quote!(user), "missing hypercall name before `user`"),
            (quote!(, user), "missing hypercall name before the comma"),
            (quote!(hello), "must be a string literal"),
            (quote!(42), "must be a string literal"),
            (quote!(b"x"), "not a byte string"),
            (quote!(concat!("a", "b")), "not expanded"),
            (quote!("x", user = true), "takes no value"),
            (quote!("x", "y"), "exactly one name"),
            (quote!("x", self), "unknown option `self`"),
            (quote!("get_vmmcall_number"), "reserved"),
        ];
        for (attr, want) in cases {
            let errs = errors(attr.clone(), f.clone());
            assert_eq!(errs.len(), 1, "{attr}: {errs:?}");
            assert!(
                errs.iter().all(|e| e.contains(want)),
                "{attr}: {errs:?} should contain {want:?}"
            );
        }
    }
}
