//! The `#[vmmcall]` attribute macro and the `interface!` macro. Use them
//! through the `vmmcall` crate.
//!
//! `interface!` (`src/interface.rs`) declares a set of
//! hypercalls once: it expands to the VMM's trait, the guest's typed stubs,
//! the signature digests and the C header. `#[vmmcall]` on `impl
//! my_api::Handlers for MyVmm` registers each handler of that impl as
//! `#[vmmcall("name")]` registers one function, with the `Handler` the
//! declaration built (its name, `user`, thunk and signature digest), and
//! with the same duplicate-name symbol, so an interface handler and a plain
//! one with the same name fail to build as two plain ones do.
//!
//! `#[vmmcall("name")]` / `#[vmmcall("name", user)]` on a plain function
//! keeps the function as written (it stays callable as a normal Rust
//! function) and adds, in a `const` block named after the hypercall:
//! - a thunk that converts the argument registers with `FromReg` and the
//!   result with `IntoRet`;
//! - a `vmmcall::Handler` in the `vmmcall::HANDLERS` linker-section slice;
//! - a `#[used]` byte with an exported symbol derived from the name, so two
//!   handlers with one name fail to build: rustc reports "symbol ... is
//!   already defined" within one crate, the linker reports "duplicate
//!   symbol" across crates.
//!
//! The expansion names the vmmcall crate `::vmmcall`, or the path given
//! with `crate = PATH` (for a VMM that re-exports vmmcall, as with linkme's
//! `#[linkme(crate = ...)]`), and asserts `vmmcall::valid_name` on the name
//! at compile time: the name rules below are checked here for the error's
//! position, and the library's `const fn` is the rule.
//!
//! The handler is also marked `#[allow(clippy::missing_const_for_fn)]`
//! (that nursery lint would suggest `const fn`, which is refused).
//!
//! # Errors
//!
//! Every misuse is a `syn::Error` on the offending token, and every misuse
//! found in one attribute and its function is reported together (the
//! function is then emitted unchanged, so its callers still compile):
//!
//! - attribute: missing name; name not a plain string literal (identifier,
//!   number, byte or C string, macro call, suffixed literal); name empty,
//!   longer than 255 bytes, containing NUL, or `get_vmmcall_number`; an
//!   unknown option, a second name, `user` with a value, `user` twice,
//!   `crate` without a path, `crate` twice;
//! - item: not a function (struct, static, ...);
//! - signature: `const`, `async`, `unsafe`, `extern "..."`, generics
//!   (type, lifetime, const), `where` clause, variadic, `self`;
//! - parameters: a reference that is not first, the context not first, a
//!   raw pointer, `impl Trait`, more than five register parameters (one
//!   error spanning the extra ones);
//! - result: a signed integer, directly or in `Result<_, _>`.
//!
//! Type errors the macro cannot see are left to rustc, with the generated
//! code spanned so that they point at the offending type: a parameter type
//! without `FromReg` (`String`, `f64`, `u128`, ...), a result type without
//! `IntoRet` (including a signed type behind an alias), a first reference
//! parameter that is not `&mut Caller` / `&Caller`.
//!
//! Known limit: on an associated function without `self` (in an `impl`
//! block), the error is rustc's "cannot find function" on its name; a
//! hypercall must be a free function.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, Item, ItemFn, LitStr, ReturnType, Token, Type};

/// Longest hypercall name in bytes (ABI v1, `vmmcall::abi::MAX_NAME_LEN`).
const MAX_NAME_LEN: usize = 255;
/// The name of function 0 (`vmmcall::abi::GET_VMMCALL_NUMBER_NAME`).
const RESERVED_NAME: &str = "get_vmmcall_number";
/// Argument registers in ABI order (`vmmcall::abi::ARG_REGISTERS`).
const ARG_REGS: [&str; 5] = ["RBX", "RCX", "RDX", "RSI", "RDI"];
/// Prefix of the per-name symbol that makes duplicate names collide.
const SYMBOL_PREFIX: &str = "__vmmcall_duplicate_hypercall_name__";
/// How the attribute is written, for error messages.
const USAGE: &str = "#[vmmcall(\"name\")] or #[vmmcall(\"name\", user)]";

mod interface;

/// Register a function as a hypercall, or every handler of an interface
/// `impl`. See the `vmmcall` crate docs.
#[proc_macro_attribute]
pub fn vmmcall(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr.into(), item.into()).into()
}

/// Declare a hypercall interface. See `vmmcall::interface!`.
#[proc_macro]
pub fn interface(input: TokenStream) -> TokenStream {
    interface::expand(input.into()).into()
}

/// The whole expansion on `proc_macro2` tokens (unit-testable). On error,
/// the errors are emitted followed by the item unchanged, so that the
/// function's own body is still type-checked and its callers do not pile up
/// "cannot find function" errors.
fn expand(attr: TokenStream2, item: TokenStream2) -> TokenStream2 {
    match try_expand(attr, item.clone()) {
        Ok(ts) => ts,
        Err(e) => {
            let err = e.to_compile_error();
            quote!(#err #item)
        }
    }
}

/// Accumulates errors so that all of them are reported at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(a) => a.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn spanned<T: ToTokens>(&mut self, tokens: T, msg: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, msg));
    }

    fn at(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.push(syn::Error::new(span, msg));
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }

    /// The errors, when at least one is known to be there.
    fn into_error(self) -> syn::Error {
        self.0
            .unwrap_or_else(|| syn::Error::new(Span::call_site(), "invalid #[vmmcall]"))
    }
}

/// The parsed attribute arguments. Parsing never fails as a whole: every
/// problem lands in `errors` and parsing goes on after the next comma.
struct Args {
    /// `None` if missing or not a string literal (already reported).
    name: Option<LitStr>,
    user: bool,
    /// `crate = PATH`: where the `vmmcall` crate is (default `::vmmcall`).
    krate: Option<syn::Path>,
    errors: Errors,
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
fn parse_segment(input: ParseStream<'_>) -> syn::Result<TokenStream2> {
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
fn parse_option(
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
fn parse_crate_path(
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

/// Why `name` cannot be a hypercall name (ABI v1), if it cannot.
fn name_problem(name: &str) -> Option<String> {
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
fn unique_symbol(name: &str) -> String {
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

fn try_expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    // `#[vmmcall] impl interface::Handlers for T`: the names come from the
    // interface, so the attribute takes at most `crate = PATH`.
    if let Ok(Item::Impl(imp)) = syn::parse2::<Item>(item.clone()) {
        if imp.trait_.is_some() {
            return expand_impl(attr, imp);
        }
    }
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

/// `let [__vmmcall_a0, .., _] = caller.args();` binding the first `used`
/// argument registers (nothing when none is used), and their names.
fn bind_registers(caller: &Ident, used: usize) -> (TokenStream2, Vec<Ident>) {
    let idents: Vec<Ident> = (0..used.min(ARG_REGS.len()))
        .map(|i| format_ident!("__vmmcall_a{i}"))
        .collect();
    let pattern = (0..ARG_REGS.len()).map(|i| match idents.get(i) {
        Some(id) => quote!(#id),
        None => quote!(_),
    });
    let binding = if idents.is_empty() {
        quote!()
    } else {
        quote!(let [#(#pattern),*] = #caller.args();)
    };
    (binding, idents)
}

/// The registration of one hypercall, for `#[vmmcall("name")]` and for each
/// handler of an interface impl: a `const` named after the hypercall
/// (`const_ident`, spanned where E0428 should point for a duplicate in one
/// module) holding the name check, `items` (a thunk), the `Handler`
/// (`handler`) in the linker-section slice, and the exported symbol that
/// makes two hypercalls with one name fail to build.
fn registration(
    krate: &syn::Path,
    const_ident: &Ident,
    name: &str,
    cfgs: &[&syn::Attribute],
    items: TokenStream2,
    handler: TokenStream2,
) -> TokenStream2 {
    let sym = unique_symbol(name);
    quote! {
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        const #const_ident: () = {
            // The library's rule, which the macros' own checks mirror.
            ::core::assert!(
                #krate::valid_name(#name.as_bytes()),
                "the vmmcall macros accepted a name vmmcall::valid_name refuses"
            );

            #items

            #[#krate::__private::linkme::distributed_slice(#krate::HANDLERS)]
            #[linkme(crate = #krate::__private::linkme)]
            static __VMMCALL_HANDLER: #krate::Handler = #handler;

            // Two hypercalls with one name define this symbol twice, and the
            // build fails: "symbol already defined" (one crate) or
            // "duplicate symbol" (linker, two crates).
            #[used]
            #[unsafe(export_name = #sym)]
            static __VMMCALL_UNIQUE_NAME: u8 = 0;
        };
    }
}

/// `#[vmmcall]` (or `#[vmmcall(crate = PATH)]`) on `impl Trait for Type`,
/// where `Trait` is an interface's `Handlers` (`interface!`): the impl as
/// written, and for each of its functions the registration that
/// `#[vmmcall("name")]` makes, with the `Handler` the interface built
/// (`<Type as Trait>::__VMMCALL_HANDLER_name`: its name, `user`, thunk and
/// signature digest). The trait's own checks make a missing handler or a
/// signature that differs from the declaration a compile error.
fn expand_impl(attr: TokenStream2, imp: syn::ItemImpl) -> syn::Result<TokenStream2> {
    let mut errors = Errors::default();
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
                    parse_crate_path(&id, rest, &mut krate, &mut errors);
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
                _ => parse_option(seg, &mut user_seen, &mut krate, &mut errors),
            }
        }
    }
    if let Some(t) = &imp.unsafety {
        errors.spanned(t, "an interface impl cannot be `unsafe`");
    }
    if !imp.generics.params.is_empty() {
        errors.spanned(
            &imp.generics,
            "an interface impl cannot be generic: its handlers are registered for one type",
        );
    }
    if let Some((Some(bang), _, _)) = &imp.trait_ {
        errors.spanned(bang, "a negative impl registers nothing");
    }
    let krate = krate.unwrap_or_else(|| syn::parse_quote!(::vmmcall));
    let Some((_, trait_path, _)) = &imp.trait_ else {
        return Err(syn::Error::new_spanned(
            &imp.self_ty,
            "#[vmmcall] on an impl needs an interface trait: `impl demo::Handlers for MyVmm`",
        ));
    };
    let self_ty = &imp.self_ty;
    let mut registrations = Vec::new();
    for item in &imp.items {
        let f = match item {
            syn::ImplItem::Fn(f) => f,
            // Anything else could stand in for a handler without being
            // registered (a macro), or replace the `Handler` the
            // declaration built (its hidden const): refused.
            other => {
                errors.spanned(
                    other,
                    "an interface impl holds only the handlers, one `fn` per declared hypercall: no consts, types or macros",
                );
                continue;
            }
        };
        let method = &f.sig.ident;
        let name = method.unraw().to_string();
        let registration_ident = Ident::new(&unique_symbol(&name), method.span());
        let hconst = interface::handler_const(method);
        let cfgs: Vec<&syn::Attribute> = f
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
            .collect();
        registrations.push(registration(
            &krate,
            &registration_ident,
            &name,
            &cfgs,
            quote!(),
            quote!(<#self_ty as #trait_path>::#hconst),
        ));
    }
    errors.finish()?;
    Ok(quote! {
        #imp
        #(#registrations)*
    })
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
    use std::collections::HashSet;

    /// The error messages `expand` produces for an attribute and an item.
    fn errors(attr: TokenStream2, item: TokenStream2) -> Vec<String> {
        match try_expand(attr, item) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

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
