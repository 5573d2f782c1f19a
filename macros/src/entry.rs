//! The expansion behind both attributes: parse the arguments and the
//! function, check them, and wrap the body in a runtime's `block_on`.
//!
//! On any error the output is the errors plus the function made harmless
//! (not `async`, no parameters for `main`, body `unreachable!()`), so that
//! the compiler reports only what is wrong with the attribute's use, not a
//! missing `main` or an `async fn main` on top of it.

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{quote, ToTokens};
use syn::parse::{Parse, ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Lit, LitStr, ReturnType, Signature, Type, Visibility};

/// Which attribute is expanding.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Main,
    Test,
}

impl Kind {
    fn attr(self) -> &'static str {
        match self {
            Kind::Main => "#[gopark::main]",
            Kind::Test => "#[gopark::test]",
        }
    }
}

/// The arguments both attributes accept, as shown in error messages (and in
/// the `.stderr` files of `tests/ui`). A new argument is one entry here, one
/// field of [`Args`], one arm in [`Args::parse`] and one line in
/// [`EntryFn::expand`].
const ACCEPTED: &[&str] = &[
    "worker_threads = N",
    "start_paused = true",
    "crate = \"path\"",
];

/// The parsed arguments.
#[derive(Default)]
struct Args {
    worker_threads: Option<usize>,
    start_paused: Option<bool>,
    krate: Option<syn::Path>,
}

impl Args {
    fn parse(kind: Kind, tokens: TokenStream) -> syn::Result<Args> {
        let mut args = Args::default();
        let mut seen: Vec<String> = Vec::new();
        syn::meta::parser(|meta| {
            let key = meta.path.to_token_stream().to_string().replace(' ', "");
            if seen.contains(&key) {
                return Err(meta.error(format!("`{key}` is given more than once")));
            }
            seen.push(key.clone());
            match key.as_str() {
                "worker_threads" => args.worker_threads = Some(worker_threads(&meta)?),
                "start_paused" => args.start_paused = Some(start_paused(&meta)?),
                "crate" => args.krate = Some(crate_path(&meta)?),
                "flavor" => {
                    return Err(meta.error(
                        "gopark has one scheduler, the work-stealing one, so there is no \
                         `flavor` to choose; for a single worker thread write \
                         `worker_threads = 1`",
                    ))
                }
                _ => {
                    return Err(meta.error(format!(
                        "unknown argument `{key}` to `{}`; it accepts: {}",
                        kind.attr(),
                        ACCEPTED
                            .iter()
                            .map(|a| format!("`{a}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            }
            Ok(())
        })
        .parse2(tokens)?;
        Ok(args)
    }
}

/// The value of `key = value`, or an error that shows the expected form.
fn value<T: Parse>(
    meta: &syn::meta::ParseNestedMeta<'_>,
    key: &str,
    example: &str,
) -> syn::Result<T> {
    if !meta.input.peek(syn::Token![=]) {
        return Err(meta.error(format!("`{key}` needs a value, like `{example}`")));
    }
    meta.value()?.parse()
}

fn worker_threads(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<usize> {
    const FORM: &str =
        "`worker_threads` takes a positive integer literal, like `worker_threads = 4`";
    let expr: Expr = value(meta, "worker_threads", "worker_threads = 4")?;
    match &expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(int), ..
        }) => match int.base10_parse::<usize>() {
            Ok(0) => Err(syn::Error::new(
                int.span(),
                "`worker_threads` must be at least 1: a runtime needs a worker thread",
            )),
            Ok(n) => Ok(n),
            Err(_) => Err(syn::Error::new(int.span(), FORM)),
        },
        other => Err(syn::Error::new_spanned(other, FORM)),
    }
}

fn start_paused(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<bool> {
    const FORM: &str = "`start_paused` takes `true` or `false`, like `start_paused = true`";
    let expr: Expr = value(meta, "start_paused", "start_paused = true")?;
    match &expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b.value),
        other => Err(syn::Error::new_spanned(other, FORM)),
    }
}

fn crate_path(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<syn::Path> {
    let example = "crate = \"my_gopark\"";
    let expr: Expr = value(meta, "crate", example)?;
    match &expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => s.parse::<syn::Path>().map_err(|_| {
            syn::Error::new(
                s.span(),
                format!("`{}` is not a path to a crate", s.value()),
            )
        }),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`crate` takes the crate's path as a string, like `{example}`"),
        )),
    }
}

/// The function the attribute is on. Its body is kept as tokens: errors in
/// it are the compiler's to report, after expansion.
struct EntryFn {
    attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    body: Group,
}

impl Parse for EntryFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<EntryFn> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig: Signature = input.parse()?;
        let body: Group = input.parse()?;
        if body.delimiter() != Delimiter::Brace {
            return Err(syn::Error::new(body.span(), "expected the function's body"));
        }
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the function"));
        }
        Ok(EntryFn {
            attrs,
            vis,
            sig,
            body,
        })
    }
}

impl EntryFn {
    fn is_main(&self) -> bool {
        self.sig.ident == "main"
    }

    /// Everything wrong with this function as an entry point of `kind`.
    fn check(&self, kind: Kind) -> Vec<syn::Error> {
        let mut errors = Vec::new();
        if self.sig.asyncness.is_none() {
            errors.push(syn::Error::new(
                self.sig.fn_token.span(),
                format!(
                    "the `async` keyword is missing from the function declaration: \
                     `{}` runs an `async fn`",
                    kind.attr()
                ),
            ));
        }
        if !self.sig.inputs.is_empty() {
            // `#[gopark::main]` may run any function (its parameters move
            // into the body), but `fn main` and tests get none.
            let msg = match kind {
                Kind::Main if self.is_main() => Some(
                    "the main function cannot take parameters; read the command line \
                     with `std::env::args()`",
                ),
                Kind::Main => None,
                Kind::Test => Some("a test function cannot take parameters"),
            };
            if let Some(msg) = msg {
                errors.push(syn::Error::new_spanned(&self.sig.inputs, msg));
            }
        }
        if kind == Kind::Test {
            for attr in &self.attrs {
                if attr.path().is_ident("test") {
                    errors.push(syn::Error::new_spanned(
                        attr,
                        "`#[gopark::test]` already adds `#[test]`; remove this one",
                    ));
                }
            }
        }
        errors
    }

    /// The function made harmless, to stand beside the errors.
    fn fallback(&self) -> TokenStream {
        let EntryFn {
            attrs, vis, sig, ..
        } = self;
        let mut sig = sig.clone();
        sig.asyncness = None;
        if self.is_main() {
            sig.inputs.clear();
        }
        quote! {
            #(#attrs)*
            #[allow(unused_variables, unreachable_code)]
            #vis #sig {
                ::core::unreachable!()
            }
        }
    }

    fn expand(&self, kind: Kind, args: Args) -> TokenStream {
        let EntryFn {
            attrs,
            vis,
            sig,
            body,
        } = self;
        let mut sig = sig.clone();
        sig.asyncness = None;
        let krate = args.krate.unwrap_or_else(|| syn::parse_quote!(::gopark));
        let worker_threads = args.worker_threads.map(|n| quote!(.worker_threads(#n)));
        let start_paused = args.start_paused.map(|p| quote!(.start_paused(#p)));
        let test = (kind == Kind::Test).then(|| quote!(#[::core::prelude::v1::test]));
        // The body's output type, given to the compiler up front so that
        // `?` inside the body knows which error to convert to. An
        // `impl Trait` output cannot be named there; inference handles it.
        let output = match &sig.output {
            ReturnType::Default => Some(quote!(())),
            ReturnType::Type(_, ty) if matches!(**ty, Type::ImplTrait(_)) => None,
            ReturnType::Type(_, ty) => Some(ty.to_token_stream()),
        };
        let pin_body = match output {
            Some(output) => quote! {
                let body: ::core::pin::Pin<
                    &mut dyn ::core::future::Future<Output = #output>,
                > = ::core::pin::pin!(async move #body);
            },
            None => quote! {
                let body = ::core::pin::pin!(async move #body);
            },
        };
        let build = LitStr::new(
            &format!("{}: failed to build the gopark runtime", kind.attr()),
            Span::call_site(),
        );
        quote! {
            #test
            #(#attrs)*
            #vis #sig {
                #pin_body
                let rt = #krate::runtime::Builder::new()
                    #worker_threads
                    #start_paused
                    .build()
                    .expect(#build);
                let output = rt.block_on(body);
                // A bounded exit: a task stuck in a blocking call, or a
                // blocking-pool job, holds the process up a second at most.
                rt.shutdown_timeout(::core::time::Duration::from_secs(1));
                output
            }
        }
    }
}

/// The whole expansion of `kind` with `args` on `item`.
pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let entry = match syn::parse2::<EntryFn>(item.clone()) {
        Ok(entry) => entry,
        Err(e) => {
            let e = syn::Error::new(
                e.span(),
                format!("`{}` goes on an `async fn`: {e}", kind.attr()),
            );
            let mut out = e.to_compile_error();
            out.extend(item);
            return out;
        }
    };
    let mut errors = entry.check(kind);
    let args = match Args::parse(kind, args) {
        Ok(args) => Some(args),
        Err(e) => {
            errors.insert(0, e);
            None
        }
    };
    match args {
        Some(args) if errors.is_empty() => entry.expand(kind, args),
        _ => {
            let mut out: TokenStream = errors.iter().map(syn::Error::to_compile_error).collect();
            out.extend(entry.fallback());
            out
        }
    }
}
