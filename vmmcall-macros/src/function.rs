//! `#[vmmcall("name")]` on a function: the checks of the item and its
//! signature (every misuse reported together), then the thunk that
//! converts the argument registers with `FromReg` and the result with
//! `IntoRet`, inside the [`registration`](crate::registration) of the
//! hypercall. The function itself stays as written.

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, Item, ItemFn, LitStr, ReturnType, Type};

use crate::abi::ARG_REGS;
use crate::attr::{Args, USAGE};
use crate::names::unique_symbol;
use crate::registration::{bind_registers, registration};

/// What a misplaced `#[vmmcall]` sits on, and the tokens to point at.
fn not_a_function(item: &Item) -> (TokenStream2, &'static str) {
    fn two(a: &impl ToTokens, b: &impl ToTokens) -> TokenStream2 {
        quote!(#a #b)
    }
    match item {
        Item::Struct(i) => (two(&i.struct_token, &i.ident), "a struct"),
        Item::Enum(i) => (two(&i.enum_token, &i.ident), "an enum"),
        Item::Union(i) => (two(&i.union_token, &i.ident), "a union"),
        Item::Static(i) => (two(&i.static_token, &i.ident), "a static"),
        Item::Const(i) => (two(&i.const_token, &i.ident), "a const"),
        Item::Mod(i) => (two(&i.mod_token, &i.ident), "a module"),
        Item::Trait(i) => (two(&i.trait_token, &i.ident), "a trait"),
        Item::Type(i) => (two(&i.type_token, &i.ident), "a type alias"),
        Item::Impl(i) => (two(&i.impl_token, &i.self_ty), "an impl block"),
        Item::Use(i) => (i.use_token.to_token_stream(), "a use declaration"),
        Item::ForeignMod(i) => (i.abi.to_token_stream(), "an extern block"),
        other => (other.to_token_stream(), "this item"),
    }
}

/// Check the attribute and the function, then generate its registration.
pub(crate) fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let Args {
        name,
        user,
        krate,
        mut errors,
    } = syn::parse2(attr)?;
    let krate = krate.unwrap_or_else(|| syn::parse_quote!(::vmmcall));

    let func: ItemFn = match syn::parse2::<Item>(item)? {
        Item::Fn(f) => f,
        other => {
            let (tokens, what) = not_a_function(&other);
            errors.spanned(
                tokens,
                format!("#[vmmcall] registers a function; it cannot be used on {what}"),
            );
            return Err(errors.into_error());
        }
    };
    let sig = &func.sig;

    if let Some(t) = &sig.constness {
        errors.spanned(t, "a hypercall cannot be a `const fn`: it is called at run time through a function pointer");
    }
    if let Some(t) = &sig.asyncness {
        errors.spanned(
            t,
            "a hypercall cannot be `async`: it runs to completion on the vCPU's exit path",
        );
    }
    if let Some(t) = &sig.unsafety {
        errors.spanned(t, "a hypercall cannot be `unsafe`: the guest cannot uphold a safety contract; check its input inside the function instead");
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(abi, "a hypercall cannot have an `extern` ABI: write a plain Rust `fn`; the guest ABI is generated");
    }
    if !sig.generics.params.is_empty() {
        errors.spanned(
            &sig.generics,
            "a hypercall cannot be generic (no type, const or lifetime parameters)",
        );
    } else if let Some(w) = &sig.generics.where_clause {
        errors.spanned(w, "a hypercall cannot have a `where` clause");
    }
    if let Some(v) = &sig.variadic {
        errors.spanned(v, "a hypercall cannot be variadic");
    }

    // Parameters: an optional context reference first, then up to five
    // register parameters.
    let mut ctx_ty: Option<&Type> = None;
    let mut reg_types: Vec<&Type> = Vec::new();
    let mut extra = TokenStream2::new();
    for (i, input) in sig.inputs.iter().enumerate() {
        let pt = match input {
            FnArg::Receiver(r) => {
                errors.spanned(
                    r,
                    "a hypercall cannot be a method: it cannot take `self`; use a free function",
                );
                continue;
            }
            FnArg::Typed(pt) => pt,
        };
        match &*pt.ty {
            Type::Reference(_) if i == 0 => ctx_ty = Some(&pt.ty),
            Type::Reference(r) if names_caller(&r.elem) => errors.spanned(
                r,
                "the context `&mut Caller` must be the first parameter",
            ),
            Type::Reference(r) => errors.spanned(
                r,
                "only the first parameter may be a reference (the context, `&mut Caller`); register parameters are passed by value: integers, bool or vmmcall::GuestAddr",
            ),
            Type::Ptr(p) => errors.spanned(
                p,
                "a hypercall cannot take a raw pointer: take a `vmmcall::GuestAddr` and access guest memory through `Caller`",
            ),
            Type::ImplTrait(t) => errors.spanned(
                t,
                "a hypercall cannot be generic: `impl Trait` parameters are not allowed",
            ),
            ty => {
                if reg_types.len() == ARG_REGS.len() {
                    pt.to_tokens(&mut extra);
                } else if reg_types.len() > ARG_REGS.len() {
                    quote!(,).to_tokens(&mut extra);
                    pt.to_tokens(&mut extra);
                }
                reg_types.push(ty);
            }
        }
    }
    if reg_types.len() > ARG_REGS.len() {
        errors.spanned(
            extra,
            format!(
                "too many register parameters: a hypercall takes at most five ({}), plus an optional `&mut Caller` first; this one has {}",
                ARG_REGS.join(", "),
                reg_types.len()
            ),
        );
    }

    let ret_ty: Option<&Type> = match &sig.output {
        ReturnType::Type(_, ty) if !is_unit(ty) => Some(ty),
        _ => None,
    };
    if let Some(bad) = ret_ty.and_then(signed_return) {
        errors.spanned(
            bad,
            "a hypercall cannot return a signed integer: a negative result would read as -errno in RAX; return an unsigned type, or Result<_, vmmcall::Error> for errors",
        );
    }

    errors.finish()?;
    let Some(name) = name else {
        // A missing or non-literal name is always reported above.
        return Err(syn::Error::new(
            Span::call_site(),
            format!("missing hypercall name: write {USAGE}"),
        ));
    };
    Ok(generate(
        &func, &name, user, &krate, ctx_ty, &reg_types, ret_ty,
    ))
}

/// The registration for a checked function.
fn generate(
    func: &ItemFn,
    name: &LitStr,
    user: bool,
    krate: &syn::Path,
    ctx_ty: Option<&Type>,
    reg_types: &[&Type],
    ret_ty: Option<&Type>,
) -> TokenStream2 {
    let fn_name = &func.sig.ident;
    // Spanned at the name, where E0428 points for a duplicate.
    let registration_ident = Ident::new(&unique_symbol(&name.value()), name.span());
    let caller = format_ident!("__vmmcall_caller");

    let (args_binding, arg_idents) = bind_registers(&caller, reg_types.len());
    // The conversion path carries the parameter type's span, so a type
    // without `FromReg` is reported on that type.
    let conv = reg_types.iter().zip(&arg_idents).map(|(ty, a)| {
        let from_reg = quote_spanned!(ty.span()=> <#ty as #krate::FromReg>::from_reg);
        quote!(#from_reg(#a)?)
    });
    // The context goes through a `let` with the declared type, spanned at
    // that type, so a mismatch (`&mut Foo` instead of `&mut Caller`) is
    // reported on it. `&Caller` works too (reborrow).
    let cx = format_ident!("__vmmcall_cx");
    let ctx_binding = ctx_ty.map(|t| {
        let caller_at_ty = Ident::new("__vmmcall_caller", t.span());
        quote_spanned!(t.span()=> let #cx: #t = #caller_at_ty;)
    });
    let ctx = ctx_ty.map(|_| quote!(#cx,));
    let call = quote!(#fn_name(#ctx #(#conv),*));
    let body = match ret_ty {
        // `()` goes through `IntoRet` too, without passing a unit value.
        None => quote! {
            #call;
            #krate::IntoRet::into_ret(())
        },
        Some(Type::ImplTrait(t)) => {
            let into_ret = quote_spanned!(t.span()=> #krate::IntoRet::into_ret);
            quote!(#into_ret(#call))
        }
        Some(ty) => {
            let into_ret = quote_spanned!(ty.span()=> <#ty as #krate::IntoRet>::into_ret);
            quote!(#into_ret(#call))
        }
    };
    let caller_param = if ctx_ty.is_some() || !reg_types.is_empty() {
        quote!(#caller)
    } else {
        quote!(_)
    };
    // Keep the registration exactly as conditional as the function.
    let cfgs = func.attrs.iter().filter(|a| a.path().is_ident("cfg"));

    let cfgs: Vec<&syn::Attribute> = cfgs.collect();
    let registration = registration(
        krate,
        &registration_ident,
        &name.value(),
        &cfgs,
        quote! {
            #[allow(deprecated)]
            fn __vmmcall_thunk(
                #caller_param: &mut #krate::Caller<'_>,
            ) -> ::core::result::Result<u64, #krate::Error> {
                #args_binding
                #ctx_binding
                #body
            }
        },
        quote!(#krate::Handler::new(#name, #user, __vmmcall_thunk)),
    );
    // The function stays as written, except that clippy's nursery lint
    // `missing_const_for_fn` must not suggest `const fn`, which is refused.
    quote! {
        #[allow(clippy::missing_const_for_fn)]
        #func

        // Named after the hypercall, not `_` (`registration`): two
        // registrations of one name in one module already clash (E0428), and
        // on an associated function in an `impl` block the only error is
        // that the function is not found (it must be a free function).
        #registration
    }
}

/// Whether a type is `()`.
fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

/// Whether a type's last path segment is `Caller` (for a better message).
fn names_caller(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Caller"))
}

/// The signed-integer type a return type names, if any (`i64`,
/// `Result<i32, _>`, ...). Aliases are not seen through; they are caught
/// by the missing `IntoRet` implementation instead.
fn signed_return(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Paren(p) => signed_return(&p.elem),
        Type::Group(g) => signed_return(&g.elem),
        Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last()?;
            if last.arguments.is_empty()
                && ["i8", "i16", "i32", "i64", "i128", "isize"]
                    .iter()
                    .any(|s| last.ident == s)
            {
                return Some(ty);
            }
            if last.ident == "Result" {
                if let syn::PathArguments::AngleBracketed(a) = &last.arguments {
                    if let Some(syn::GenericArgument::Type(t)) = a.args.first() {
                        return signed_return(t);
                    }
                }
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expand;
    use crate::tests::errors;

    #[test]
    fn signed_returns_are_seen_through_result_and_paths() {
        let signed = |t: TokenStream2| {
            signed_return(&syn::parse2(t).unwrap_or(Type::Verbatim(quote!()))).is_some()
        };
        assert!(signed(quote!(i64)));
        assert!(signed(quote!(isize)));
        assert!(signed(quote!(core::primitive::i8)));
        assert!(signed(quote!(Result<i32, Error>)));
        assert!(signed(quote!(core::result::Result<i128, vmmcall::Error>)));
        assert!(signed(quote!((i16))));
        assert!(!signed(quote!(u64)));
        assert!(!signed(quote!(Result<u32, Error>)));
        assert!(!signed(quote!(bool)));
        assert!(!signed(quote!(Option<i64>)));
    }

    #[test]
    fn accepted_forms_expand() {
        let ok = [
            (
                quote!("hello"),
                quote!(
                    fn hello(a: u64) -> u64 {
                        a
                    }
                ),
            ),
            (
                quote!("hello", user),
                quote!(
                    fn hello() {}
                ),
            ),
            (
                quote!("hello", user,),
                quote!(
                    pub fn hello(
                        cx: &mut Caller,
                        a: u8,
                        b: u8,
                        c: u8,
                        d: u8,
                        e: u8,
                    ) -> Result<u8, Error> {
                        Ok(a)
                    }
                ),
            ),
            (
                quote!(r"raw"),
                quote!(
                    fn raw() -> () {}
                ),
            ),
        ];
        for (attr, item) in ok {
            assert_eq!(
                errors(attr.clone(), item.clone()),
                Vec::<String>::new(),
                "{attr} {item}"
            );
        }
        let out = expand(
            quote!("a.b", user),
            quote!(
                fn f(cx: &mut Caller, x: u8) -> u32 {
                    0
                }
            ),
        )
        .to_string();
        assert!(
            out.contains("__vmmcall_duplicate_hypercall_name__a_2Eb"),
            "{out}"
        );
        assert!(out.contains("Handler :: new (\"a.b\" , true"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn every_misuse_is_reported_together() {
        let errs = errors(
            quote!("", bogus, user, user),
            quote!(
                pub const async unsafe extern "C" fn f<T>(
                    self,
                    a: u8,
                    b: &str,
                    c: *const u8,
                    d: impl Copy,
                    e: u8,
                    f: u8,
                    g: u8,
                    h: u8,
                    i: u8,
                ) -> i32 {
                    0
                }
            ),
        );
        let expected = [
            "must not be empty",
            "unknown option `bogus`",
            "`user` is given twice",
            "`const fn`",
            "`async`",
            "`unsafe`",
            "`extern` ABI",
            "generic",
            "method",
            "only the first parameter may be a reference",
            "raw pointer",
            "`impl Trait`",
            "too many register parameters",
            "signed integer",
        ];
        assert_eq!(errs.len(), expected.len(), "{errs:#?}");
        for (e, want) in errs.iter().zip(expected) {
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
    }
    #[test]
    fn not_a_function_is_refused_and_kept() {
        let errs = errors(
            quote!("x"),
            quote!(
                struct S {
                    a: u8,
                }
            ),
        );
        assert_eq!(
            errs,
            ["#[vmmcall] registers a function; it cannot be used on a struct"]
        );
        // The item is kept after the error, so that its users still compile.
        let out = expand(
            quote!("x"),
            quote!(
                struct S;
            ),
        )
        .to_string();
        assert!(
            out.contains("compile_error") && out.ends_with("struct S ;"),
            "{out}"
        );
    }
}
