//! The `#[cached]` attribute of Strata: memoize a function in a `strata::Cache`, with request
//! coalescing. Use it as `strata::cached`; see its documentation there.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{ToTokens, format_ident, quote};
use syn::punctuated::Punctuated;
use syn::{
    Error, Expr, ExprLit, FnArg, GenericArgument, Ident, ItemFn, Lit, Meta, Pat, PathArguments,
    ReturnType, Token, Type, parse_macro_input,
};

/// Memoizes a function in a `strata::Cache`; documented on its re-export `strata::cached`.
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(attr with Punctuated::<Meta, Token![,]>::parse_terminated);
    let func = parse_macro_input!(item as ItemFn);
    match Options::parse(args).and_then(|options| expand(options, func)) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// What the attribute's arguments asked for.
struct Options {
    capacity: Expr,
    /// Time-to-live in nanoseconds.
    ttl: Option<u64>,
    key: Option<Expr>,
    key_type: Option<Type>,
    /// The function returns `Result<T, E>`; only `Ok` is cached.
    result: bool,
    /// The function returns `Option<T>`; only `Some` is cached.
    option: bool,
    /// A shared cache (a `static` that derefs to `strata::Cache<Key, Value>`).
    cache: Option<Expr>,
}

impl Options {
    fn parse(args: Punctuated<Meta, Token![,]>) -> syn::Result<Self> {
        let mut options = Self {
            capacity: syn::parse_quote!(1000),
            ttl: None,
            key: None,
            key_type: None,
            result: false,
            option: false,
            cache: None,
        };
        for arg in args {
            let Meta::NameValue(nv) = arg else {
                return Err(Error::new_spanned(arg, "expected `name = value`"));
            };
            let name = nv
                .path
                .get_ident()
                .map(Ident::to_string)
                .unwrap_or_default();
            match name.as_str() {
                "capacity" => options.capacity = nv.value,
                "ttl" => options.ttl = Some(parse_duration(&nv.value)?),
                "key" => options.key = Some(nv.value),
                "key_type" => options.key_type = Some(syn::parse2(nv.value.to_token_stream())?),
                "result" => options.result = parse_bool(&nv.value)?,
                "option" => options.option = parse_bool(&nv.value)?,
                "cache" => options.cache = Some(nv.value),
                _ => {
                    return Err(Error::new_spanned(
                        nv.path,
                        "unknown option; expected capacity, ttl, key, key_type, result, option or cache",
                    ));
                }
            }
        }
        if options.result && options.option {
            return Err(Error::new(
                Span::call_site(),
                "`result` and `option` exclude each other",
            ));
        }
        if options.key.is_some() != options.key_type.is_some() {
            return Err(Error::new(
                Span::call_site(),
                "`key` and `key_type` go together",
            ));
        }
        Ok(options)
    }
}

fn parse_bool(value: &Expr) -> syn::Result<bool> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b.value),
        other => Err(Error::new_spanned(other, "expected `true` or `false`")),
    }
}

/// `"250ms"`, `"60s"`, `"5m"`, `"2h"`, `"1d"`, or a whole number of seconds.
fn parse_duration(value: &Expr) -> syn::Result<u64> {
    let bad = || {
        Error::new_spanned(
            value,
            "expected a duration such as \"500ms\", \"60s\", \"5m\", \"2h\" or \"1d\"",
        )
    };
    let Expr::Lit(ExprLit { lit, .. }) = value else {
        return Err(bad());
    };
    let (number, unit) = match lit {
        Lit::Int(int) => (int.base10_parse::<u64>()?, "s".to_string()),
        Lit::Str(text) => {
            let text = text.value();
            let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            let number = text[..split].parse::<u64>().map_err(|_| bad())?;
            (number, text[split..].trim().to_string())
        }
        _ => return Err(bad()),
    };
    let unit_nanos: u64 = match unit.as_str() {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        "d" => 86_400 * 1_000_000_000,
        _ => return Err(bad()),
    };
    match number.checked_mul(unit_nanos) {
        Some(0) | None => Err(Error::new_spanned(
            value,
            "the TTL must be positive and below ~584 years",
        )),
        Some(nanos) => Ok(nanos),
    }
}

/// `Wrapper<T, ...>` → `T` (the first generic argument), if the type's last segment is `name`.
fn first_generic(ty: &Type, name: &str) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let segment = path.path.segments.last()?;
    if segment.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    args.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    })
}

fn expand(options: Options, func: ItemFn) -> syn::Result<Tokens> {
    let sig = &func.sig;
    if !sig.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &sig.generics,
            "#[cached] does not support generic functions",
        ));
    }
    let mut names = Vec::new();
    let mut types = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                return Err(Error::new_spanned(
                    receiver,
                    "#[cached] does not support methods; cache a free function",
                ));
            }
            FnArg::Typed(typed) => {
                let Pat::Ident(ident) = &*typed.pat else {
                    return Err(Error::new_spanned(
                        &typed.pat,
                        "#[cached] needs plain argument names",
                    ));
                };
                if matches!(&*typed.ty, Type::Reference(_)) && options.key.is_none() {
                    return Err(Error::new_spanned(
                        &typed.ty,
                        "a borrowed argument cannot be a cache key; take it by value, or give `key = …` and `key_type = …`",
                    ));
                }
                names.push(ident.ident.clone());
                types.push((*typed.ty).clone());
            }
        }
    }
    let ReturnType::Type(_, output) = &sig.output else {
        return Err(Error::new_spanned(
            sig,
            "#[cached] needs a function that returns a value",
        ));
    };
    let value_type = if options.result {
        first_generic(output, "Result").ok_or_else(|| {
            Error::new_spanned(output, "`result = true` needs a `Result<T, E>` return type")
        })?
    } else if options.option {
        first_generic(output, "Option").ok_or_else(|| {
            Error::new_spanned(output, "`option = true` needs an `Option<T>` return type")
        })?
    } else {
        (**output).clone()
    };
    let key_type = options
        .key_type
        .clone()
        .map_or_else(|| quote!((#(#types,)*)), |t| quote!(#t));
    let key_expr = options
        .key
        .clone()
        .map_or_else(|| quote!((#(#names.clone(),)*)), |k| quote!(#k));

    let fn_name = &sig.ident;
    let vis = &func.vis;
    let attrs = &func.attrs;
    let body = &func.block;
    let is_async = sig.asyncness.is_some();

    let static_name = format_ident!("__STRATA_CACHED_{}", fn_name.to_string().to_uppercase());
    let (cache_static, cache) = match &options.cache {
        Some(shared) => (quote!(), quote!((#shared))),
        None => {
            let capacity = &options.capacity;
            let ttl = options
                .ttl
                .map(|nanos| quote!(.time_to_live(::std::time::Duration::from_nanos(#nanos))));
            (
                quote! {
                    static #static_name: ::std::sync::LazyLock<::strata::Cache<#key_type, #value_type>> =
                        ::std::sync::LazyLock::new(|| {
                            ::strata::Cache::builder()
                                .max_capacity(#capacity)
                                #ttl
                                .build()
                                .expect("#[cached]: capacity and TTL are valid")
                        });
                },
                quote!(#static_name),
            )
        }
    };

    let lookup = match (is_async, options.result, options.option) {
        (false, false, false) => quote!(#cache.get_with(__key, move || #body)),
        (false, true, _) => quote! {
            match #cache.try_get_with(__key, move || -> #output { #body }) {
                ::std::result::Result::Ok(value) => ::std::result::Result::Ok(value),
                ::std::result::Result::Err(error) => ::std::result::Result::Err((*error).clone()),
            }
        },
        (false, false, true) => quote! {
            #cache
                .try_get_with(__key, move || (move || -> #output { #body })().ok_or(()))
                .ok()
        },
        (true, false, false) => quote!(#cache.get_with_async(__key, async move #body).await),
        (true, true, _) => quote! {
            match #cache.try_get_with_async(__key, async move { let r: #output = async move #body.await; r }).await {
                ::std::result::Result::Ok(value) => ::std::result::Result::Ok(value),
                ::std::result::Result::Err(error) => ::std::result::Result::Err((*error).clone()),
            }
        },
        (true, false, true) => quote! {
            #cache
                .try_get_with_async(__key, async move { let r: #output = async move #body.await; r.ok_or(()) })
                .await
                .ok()
        },
    };

    let info = format_ident!("{}_cache_info", fn_name);
    let clear = format_ident!("{}_cache_clear", fn_name);
    let invalidate = format_ident!("{}_invalidate", fn_name);
    let refresh = format_ident!("{}_refresh", fn_name);
    let inputs = &sig.inputs;
    let (asyncness, dot_await) = if is_async {
        (quote!(async), quote!(.await))
    } else {
        (quote!(), quote!())
    };
    let doc_info = format!("Hits, misses, size and capacity of the cache behind [`{fn_name}`].");
    let doc_clear = format!("Empties the cache behind [`{fn_name}`].");
    let doc_invalidate = format!("Drops the cached result of [`{fn_name}`] for these arguments.");
    let doc_refresh =
        format!("Recomputes [`{fn_name}`] for these arguments and caches the result.");

    Ok(quote! {
        #cache_static

        #(#attrs)*
        #vis #sig {
            let __key: #key_type = #key_expr;
            #lookup
        }

        #[doc = #doc_info]
        #vis fn #info() -> ::strata::CacheInfo {
            #cache.info()
        }

        #[doc = #doc_clear]
        #vis fn #clear() {
            #cache.invalidate_all();
        }

        #[doc = #doc_invalidate]
        #vis fn #invalidate(#inputs) {
            let _ = (#(&#names,)*); // arguments a `key` expression leaves out
            let __key: #key_type = #key_expr;
            #cache.remove(&__key);
        }

        #[doc = #doc_refresh]
        #vis #asyncness fn #refresh(#inputs) -> #output {
            let __key: #key_type = #key_expr;
            #cache.remove(&__key);
            #fn_name(#(#names),*) #dot_await
        }
    })
}
