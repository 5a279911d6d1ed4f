//! Minifier for stored worker scripts (W-SET-3, W-SET-3b).
//!
//! A worker script is the *body of an async function*: top-level `await`, `for await` and `return`
//! are legal, and the runtime runs it by wrapping it in an async function. This module parses the
//! script exactly that way — inside `(async function(){` … `})` as a sloppy-mode script — checks
//! it for syntax errors (parser and semantic early errors, e.g. `let a; let a;`, `break;`),
//! and prints the function body back with oxc's whitespace-free printer.
//!
//! What it is *not*: it is not a compressor. It does not rename anything, drop unused code, fold
//! constants or join statements: the output is the same program, statement for statement and
//! name for name, without comments and whitespace. (oxc's compressor saves only ~4 % more on real
//! scripts once whitespace is gone, rewrites `const` to `let`, inlines constants and joins
//! statements — not worth the risk for code that other code reads back in logs and errors.)
//!
//! Minifying twice gives the same text (W-SET-3b). The printer is deterministic, and the result
//! is only returned once printing it again gives it back unchanged (a fixed point, reached after
//! a bounded number of rounds); that check also proves the output parses again.
//!
//! Hard limits: scripts over [`MAX_SCRIPT_BYTES`] are rejected. oxc's parser and printer recurse
//! once per nesting level and have no depth limit, so a short script such as `[[[[…` can overflow
//! a thread's stack, which aborts the whole process. The work therefore runs on a thread of its
//! own whose stack grows with the script's length (virtual memory; only what the nesting really
//! uses is touched — up to ~1.6 KiB per nesting level in release builds).

use oxc_allocator::{Allocator, TakeIn};
use oxc_ast::ast::{Expression, FunctionBody, Program, Statement};
use oxc_codegen::{Codegen, CodegenOptions};
use oxc_parser::{ParseOptions, Parser};
use oxc_semantic::SemanticBuilder;
use oxc_span::{LabeledSpan, SourceType};

/// Text placed before the script so that it parses as an async function body.
///
/// It ends with a newline so that the script's first line is a line of its own.
const PREFIX: &str = "(async function(){\n";

/// Text placed after the script to close [`PREFIX`].
///
/// It starts with a newline so that a script ending in a line comment (`// }`) cannot comment
/// out the closing brace.
const SUFFIX: &str = "\n})";

/// Byte offset, in the wrapped text, of the `{` that opens the function body.
const BODY_OPEN: usize = PREFIX.len() - 2;

/// How many times the output is printed again at most while looking for a fixed point.
///
/// Measured: on ~1,200 real-world files the first print is already a fixed point.
const MAX_ROUNDS: usize = 4;

/// Longest script accepted, in bytes: twice the 64 KiB limit of a stored worker entry (W-SET-8),
/// so that a heavily commented script still gets the chance to fit once minified.
pub const MAX_SCRIPT_BYTES: usize = 128 * 1024;

/// Stack of the minifier thread before counting the script's length.
const STACK_BASE: usize = 8 * 1024 * 1024;

/// Stack reserved per byte of script, since every byte can open one more nesting level.
///
/// Measured worst cases per nesting level: ~1.6 KiB for `[`/`(` in release builds, ~19.5 KiB for
/// groups in a regular expression literal (`/((((…/`) in unoptimized builds.
const STACK_PER_BYTE: usize = if cfg!(debug_assertions) {
    32 * 1024
} else {
    4 * 1024
};

/// A script that does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} at line {line}, column {column}")]
pub struct MinifyError {
    /// The parser's message, e.g. ``Unexpected token`` or ``Identifier `a` has already been declared``.
    pub message: String,
    /// 1-based line in the original script text (`\n`, `\r\n`, `\r`, U+2028 and U+2029 end a line,
    /// as in ECMAScript).
    pub line: u32,
    /// 1-based column in the original script text, counted in characters (Unicode scalar values).
    pub column: u32,
}

/// Minifies a worker script (the body of an async function) without changing what it does.
///
/// Comments and whitespace are removed; names, statements and top-level `await`/`return` are
/// kept, and the result is again a valid async-function body. The result is a fixed point:
/// `minify_script(&minify_script(x)?)` returns the same text. An empty (or whitespace- or
/// comment-only) script gives `""`.
///
/// # Errors
///
/// Returns [`MinifyError`] with the parser's message and the 1-based line and column in
/// `source` when the script has a syntax error, including a `}` that would close the function
/// the script runs in (such as `}); evil(); (async function(){`), and for a script longer than
/// [`MAX_SCRIPT_BYTES`]. Should the printer ever produce text that does not parse again or does
/// not reach a fixed point (never seen in testing), the script is rejected with an
/// "internal minifier error" at line 1, column 1 rather than stored in a form that could change.
///
/// Takes about 1 ms for 40 KiB in release builds: run it off the async executor's threads.
pub fn minify_script(source: &str) -> Result<String, MinifyError> {
    on_own_stack(source, minify_here)
}

/// Scripts up to this many bytes are minified on a few long-lived threads whose stack fits the
/// deepest nesting such a script can have; longer ones on a thread of their own. Starting a
/// thread per script cost about a tenth of a `setWorker`'s CPU (BENCHMARKS.md, issue 13).
const POOLED_SCRIPT_BYTES: usize = 16 * 1024;

/// Scripts waiting for a pooled minifier thread; past it, a script gets a thread of its own.
const POOL_QUEUE: usize = 64;

/// A script for a pooled minifier thread, and where its result goes.
struct MinifyJob {
    source: String,
    reply: tokio::sync::oneshot::Sender<Result<String, MinifyError>>,
}

/// The pooled minifier threads' queue (`None` if they could not be started).
fn minifier_pool() -> Option<&'static std::sync::mpsc::SyncSender<MinifyJob>> {
    static POOL: std::sync::OnceLock<Option<std::sync::mpsc::SyncSender<MinifyJob>>> =
        std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let (jobs, queue) = std::sync::mpsc::sync_channel::<MinifyJob>(POOL_QUEUE);
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        let threads = std::thread::available_parallelism().map_or(1, usize::from).min(4);
        let mut started = 0;
        for _ in 0..threads {
            let queue = std::sync::Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name("minify".to_owned())
                .stack_size(STACK_BASE + POOLED_SCRIPT_BYTES * STACK_PER_BYTE)
                .spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            minify_here(&job.source)
                        }))
                        .unwrap_or_else(|_| Err(internal_error("the minifier panicked")));
                        let _ = job.reply.send(result);
                    }
                });
            started += usize::from(spawned.is_ok());
        }
        (started > 0).then_some(jobs)
    })
    .as_ref()
}

/// [`minify_script`] off the calling thread, for async callers: a short script goes to a pooled
/// minifier thread, anything else (or a short script when the pool is busy) to the blocking
/// pool, which starts a thread with a stack of its own for it.
pub async fn minify_script_off_thread(source: String) -> Result<String, MinifyError> {
    let mut source = source;
    if source.len() <= POOLED_SCRIPT_BYTES
        && let Some(pool) = minifier_pool()
    {
        let (reply, result) = tokio::sync::oneshot::channel();
        match pool.try_send(MinifyJob { source, reply }) {
            Ok(()) => {
                return result
                    .await
                    .unwrap_or_else(|_| Err(internal_error("the minifier thread ended")));
            }
            Err(
                std::sync::mpsc::TrySendError::Full(job) | std::sync::mpsc::TrySendError::Disconnected(job),
            ) => {
                source = job.source;
            }
        }
    }
    tokio::task::spawn_blocking(move || minify_script(&source))
        .await
        .unwrap_or_else(|e| Err(internal_error(&e.to_string())))
}

/// The script printed back for reading: one statement per line, indented, comments gone.
///
/// Minified scripts are what the store holds (W-SET-3); this gives a person something to edit.
/// The result is the same program: minifying it gives the same text as minifying `source`.
///
/// # Errors
///
/// As [`minify_script`].
pub fn format_script(source: &str) -> Result<String, MinifyError> {
    on_own_stack(source, |text| {
        print_once(text, Printer::Readable).map_err(|failure| failure.locate(text))
    })
}

/// Runs `work` on `source` on a thread whose stack grows with the script's length (see the
/// module documentation), after refusing scripts over [`MAX_SCRIPT_BYTES`].
fn on_own_stack(
    source: &str,
    work: impl FnOnce(&str) -> Result<String, MinifyError> + Send,
) -> Result<String, MinifyError> {
    if source.len() > MAX_SCRIPT_BYTES {
        let (line, column) = line_column(source, MAX_SCRIPT_BYTES);
        return Err(MinifyError {
            message: format!("Script is longer than {MAX_SCRIPT_BYTES} bytes"),
            line,
            column,
        });
    }
    let stack_size = STACK_BASE + source.len() * STACK_PER_BYTE;
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("minify".to_owned())
            .stack_size(stack_size)
            .spawn_scoped(scope, || work(source));
        match worker {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(internal_error("the minifier panicked"))),
            Err(error) => Err(internal_error(&format!(
                "cannot start the minifier thread: {error}"
            ))),
        }
    })
}

/// [`minify_script`] on the current thread, whose stack must be large enough for `source`.
fn minify_here(source: &str) -> Result<String, MinifyError> {
    let mut current = print_once(source, Printer::Minified).map_err(|failure| failure.locate(source))?;
    for _ in 0..MAX_ROUNDS {
        let next =
            print_once(&current, Printer::Minified).map_err(|failure| internal_error(&failure.message))?;
        if next == current {
            return Ok(current);
        }
        current = next;
    }
    Err(internal_error("the minified script does not reach a stable form"))
}

/// How [`print_once`] prints the script back.
#[derive(Clone, Copy, Debug)]
enum Printer {
    /// Without whitespace: what the store holds.
    Minified,
    /// Indented, one statement per line: for a person to read.
    Readable,
}

/// A syntax error found by [`print_once`], located by a byte offset into the text it was given.
#[derive(Debug)]
struct SyntaxFailure {
    /// The parser's message.
    message: String,
    /// Byte offset into the unwrapped script; at most the script's length.
    offset: usize,
}

impl SyntaxFailure {
    /// Turns a diagnostic on the wrapped text into a failure on the script of `source_len` bytes.
    ///
    /// The position is the diagnostic's primary label if it has one, else its latest label: oxc
    /// labels a redeclaration at the earlier declaration and then at the new one, and a missing
    /// closing bracket where it was expected and where the bracket was opened. The latest position
    /// is where the script stopped being valid, as a JavaScript engine would report it.
    fn from_diagnostic(message: &str, labels: &[LabeledSpan], source_len: usize) -> Self {
        let wrapped_offset = labels
            .iter()
            .find(|label| label.primary())
            .or_else(|| labels.iter().max_by_key(|label| label.offset()))
            .map_or(PREFIX.len(), |label| label.offset() as usize);
        Self {
            message: message.to_owned(),
            offset: unwrap_offset(wrapped_offset, source_len),
        }
    }

    /// Reports an unbalanced `}` at `offset` (in the unwrapped script).
    fn unbalanced_brace(offset: usize) -> Self {
        Self {
            message: "Unexpected token `}`: it closes the function the script runs in".to_owned(),
            offset,
        }
    }

    /// Converts to the public error, with line and column in `source`.
    fn locate(self, source: &str) -> MinifyError {
        let (line, column) = line_column(source, self.offset);
        MinifyError {
            message: self.message,
            line,
            column,
        }
    }
}

/// Maps a byte offset in the wrapped text to one in the script, clamped into the script.
fn unwrap_offset(wrapped_offset: usize, source_len: usize) -> usize {
    wrapped_offset.saturating_sub(PREFIX.len()).min(source_len)
}

/// The error returned when the printer's own output does not behave; never seen in testing.
fn internal_error(detail: &str) -> MinifyError {
    MinifyError {
        message: format!("internal minifier error: {detail}"),
        line: 1,
        column: 1,
    }
}

/// 1-based line and column (in characters) of the byte `offset` in `source`.
fn line_column(source: &str, offset: usize) -> (u32, u32) {
    let mut line: u32 = 1;
    let mut column: u32 = 1;
    let mut previous = '\0';
    for (index, character) in source.char_indices() {
        if index >= offset {
            break;
        }
        match character {
            '\n' if previous == '\r' => {}
            '\n' | '\r' | '\u{2028}' | '\u{2029}' => {
                line = line.saturating_add(1);
                column = 1;
            }
            _ => column = column.saturating_add(1),
        }
        previous = character;
    }
    (line, column)
}

/// Parses `source` as an async function body, checks it, and prints it without whitespace.
fn print_once(source: &str, printer: Printer) -> Result<String, SyntaxFailure> {
    let wrapped = [PREFIX, source, SUFFIX].concat();
    let allocator = Allocator::default();
    let options = ParseOptions {
        parse_regular_expression: true,
        ..ParseOptions::default()
    };
    let parsed = Parser::new(&allocator, &wrapped, SourceType::script())
        .with_options(options)
        .parse();
    if let Some(diagnostic) = parsed.diagnostics.errors().next() {
        let failure = SyntaxFailure::from_diagnostic(&diagnostic.message, &diagnostic.labels, source.len());
        // A stray `}` closes the wrapper early and the parser only trips over what follows it;
        // point at the brace itself when it comes first.
        return Err(match stray_brace(source) {
            Some(offset) if offset < failure.offset => SyntaxFailure::unbalanced_brace(offset),
            _ => failure,
        });
    }
    let mut program = parsed.program;
    if wrapper_body(&mut program, wrapped.len()).is_none() {
        let offset = stray_brace(source).unwrap_or(0);
        return Err(SyntaxFailure::unbalanced_brace(offset));
    }
    let checked = SemanticBuilder::new()
        .with_check_syntax_error(true)
        .build(&program);
    if let Some(diagnostic) = checked.diagnostics.errors().next() {
        return Err(SyntaxFailure::from_diagnostic(
            &diagnostic.message,
            &diagnostic.labels,
            source.len(),
        ));
    }
    drop(checked);
    // Print the body alone: its directives and statements become the program's.
    if let Some(body) = wrapper_body(&mut program, wrapped.len()) {
        let arena = &allocator;
        let directives = body.directives.take_in(&arena);
        let statements = body.statements.take_in(&arena);
        program.directives = directives;
        program.body = statements;
    }
    let options = match printer {
        Printer::Minified => CodegenOptions::minify(),
        Printer::Readable => CodegenOptions {
            comments: oxc_codegen::CommentOptions::disabled(),
            ..CodegenOptions::default()
        },
    };
    Ok(Codegen::new().with_options(options).build(&program).code)
}

/// The body of the wrapper's function, if `program` (the wrapped text, `wrapped_len` bytes long)
/// is the wrapper alone and that body spans the whole script: the script neither closed the
/// wrapper early nor added anything after it.
fn wrapper_body<'p, 'a>(
    program: &'p mut Program<'a>,
    wrapped_len: usize,
) -> Option<&'p mut FunctionBody<'a>> {
    let [Statement::ExpressionStatement(statement)] = program.body.as_mut_slice() else {
        return None;
    };
    let Expression::ParenthesizedExpression(parenthesized) = &mut statement.expression else {
        return None;
    };
    let Expression::FunctionExpression(function) = &mut parenthesized.expression else {
        return None;
    };
    let body = function.body.as_deref_mut()?;
    // The body must open with the prefix's `{` and close with the suffix's `}`, the byte before
    // the final `)`.
    let whole = body.span.start as usize == BODY_OPEN && body.span.end as usize + 1 == wrapped_len;
    whole.then_some(body)
}

/// Byte offset (in `source`) of a `}` that closes the wrapper's function body, if one is found.
///
/// Only used to point at the right place once the script was rejected. A stray `}` closes the
/// wrapper early, and the wrapped parse only trips over what follows it (often the wrapper's own
/// closing text). Parsed on its own as a module body (which also allows top-level `await` and,
/// with the option, `return`), such a script fails right at that brace.
fn stray_brace(source: &str) -> Option<usize> {
    let allocator = Allocator::default();
    let options = ParseOptions {
        allow_return_outside_function: true,
        ..ParseOptions::default()
    };
    let parsed = Parser::new(&allocator, source, SourceType::mjs())
        .with_options(options)
        .parse();
    let diagnostic = parsed.diagnostics.errors().next()?;
    let label = diagnostic
        .labels
        .iter()
        .find(|label| label.primary())
        .or_else(|| diagnostic.labels.first())?;
    let offset = label.offset() as usize;
    source
        .get(offset..)
        .is_some_and(|rest| rest.starts_with('}'))
        .then_some(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minifies, and checks that the result is a fixed point.
    fn minified(source: &str) -> String {
        let once = minify_script(source).unwrap_or_else(|e| panic!("{source:?} failed: {e}"));
        let twice = minify_script(&once).unwrap_or_else(|e| panic!("{once:?} failed again: {e}"));
        assert_eq!(once, twice, "not idempotent for {source:?}");
        once
    }

    /// The error for a script that must not parse.
    fn error(source: &str) -> MinifyError {
        match minify_script(source) {
            Ok(out) => panic!("{source:?} was accepted as {out:?}"),
            Err(e) => e,
        }
    }

    /// Asserts the error position (1-based line and column) of a script that must not parse.
    fn assert_error_at(source: &str, line: u32, column: u32) -> MinifyError {
        let e = error(source);
        assert_eq!((e.line, e.column), (line, column), "{source:?}: {e}");
        assert!(!e.message.is_empty());
        e
    }

    const EXAMPLE: &str = r#"const interval = 1000;
logger.info("tick", Stels.config.nid);
let n = 0;
for await (const x of something()) { n++; }
const r = await fetch("http://127.0.0.1:1/x").catch(e => null);
if (shouldStop()) return;
class A { get v() { return 1 } set v(x) {} }
await Stels.sleep(interval);
"#;

    #[test]
    fn example_script_keeps_names_statements_await_and_return() {
        let out = minified(EXAMPLE);
        assert_eq!(
            out,
            "const interval=1e3;logger.info(`tick`,Stels.config.nid);let n=0;\
             for await(const x of something()){n++}\
             const r=await fetch(`http://127.0.0.1:1/x`).catch(e=>null);if(shouldStop())return;\
             class A{get v(){return 1}set v(x){}}await Stels.sleep(interval);"
        );
    }

    #[test]
    fn removes_comments_and_whitespace() {
        let source = "// head })\n/* block */ x ( 1 ) ; /** doc */\n/*! legal */ y()\n// tail";
        assert_eq!(minified(source), "x(1);y();");
    }

    #[test]
    fn empty_whitespace_and_comment_only_scripts_give_empty_text() {
        for source in ["", "   \n\t\r\n", "// only a comment", "/* block */", "\u{feff}"] {
            assert_eq!(minified(source), "", "{source:?}");
        }
    }

    #[test]
    fn does_not_rename_fold_or_drop_anything() {
        let source = "const veryLongName = 1;\n\
                      function helperFunction(argumentName) { let localVariable = argumentName; return localVariable }\n\
                      await sleep(veryLongName);\n\
                      if (false) { deadCode() }\n\
                      const unused = 2 + 3;\n\
                      debugger;";
        assert_eq!(
            minified(source),
            "const veryLongName=1;function helperFunction(argumentName){let localVariable=argumentName;\
             return localVariable}await sleep(veryLongName);if(false){deadCode()}const unused=2+3;debugger;"
        );
    }

    #[test]
    fn automatic_semicolon_insertion_is_kept() {
        assert_eq!(minified("return\nx"), "return;x;");
        assert_eq!(minified("a\n++b"), "a;++b;");
        assert_eq!(minified("a\r--b"), "a;--b;");
        assert_eq!(minified("let c = a\n(1)"), "let c=a(1);");
        assert_eq!(minified("let d = b\n/2/g"), "let d=b/2/g;");
        assert_eq!(minified("x\n;[1].map(f)"), "x;[1].map(f);");
        assert_eq!(
            minified("var async = 1; async\nfunction f() {}"),
            "var async=1;async;function f(){}"
        );
        assert_eq!(minified("a()\u{2028}b()"), "a();b();");
        assert_eq!(minified("if (a) b\nelse c"), "if(a)b;else c;");
    }

    #[test]
    fn tokens_that_would_merge_are_kept_apart() {
        assert_eq!(minified("a < !--b"), "a<! --b;");
        assert_eq!(
            minified("a - -b; a + +b; a + ++b; a++ + b"),
            "a- -b;a+ +b;a+ ++b;a+++b;"
        );
        assert_eq!(
            minified("1..toString(); 5 .toFixed()"),
            "1 .toString();5 .toFixed();"
        );
        assert_eq!(
            minified("typeof -a; x instanceof Y; 'k' in o"),
            "typeof-a;x instanceof Y;`k`in o;"
        );
    }

    #[test]
    fn directives_stay_directives_and_nothing_else_becomes_one() {
        assert_eq!(minified("'use strict'; x = 1"), "\"use strict\";x=1;");
        assert_eq!(minified("\"use\\x20strict\"; x = 1"), "\"use\\x20strict\";x=1;");
        // A parenthesized string is not a directive, and must not turn into one.
        let out = minified("(\"use strict\"); x = 1");
        assert!(!out.starts_with("\"use strict\""), "{out}");
        assert!(!out.starts_with("'use strict'"), "{out}");
    }

    #[test]
    fn idempotent_on_many_scripts() {
        let scripts = [
            EXAMPLE,
            "class A { get v() { return this._v } set v(x) { this._v = x } static get s() { return 1 } }",
            "const o = { get a() { return 1 }, set a(v) {}, get: 1, set: 2, async: 3, static: 4 };",
            "const name = 'w\\u00f6rld';\nlog(`hi ${name} ${`in ${1 + 2}`} \\` \\${no} }) */ //`);",
            "log(tag`a\\nb${1}c\\u0041${2}`, String.raw`\\u{zz}`);\nlog(`line1\nline2`);",
            "const re = /a\\/b[/]c/gi; log('xa/b/c'.replace(re, '!'), /[}]\\)/.test('})'), /\\*\\//.test('*/'));",
            "log(4 / 2 / 1, /=/.test('='), x / y / z, /(?<name>x)\\k<name>/u, /[\\p{L}--\\p{N}]/v);",
            "const s = 'héllo 😀 \u{2028} \\u2029 \\0 \\x00 \\v \\'\"` \\\\'; const ü = 1, 𝒜 = 2; log(s, ü + 𝒜);",
            "log('</script>', '<!--', '-->', '\\ud800', '\\u{10FFFF}', \"\\x001\");",
            "outer: for (let i = 0; i < 3; i++) { inner: for (;;) { if (i) continue outer; break inner } }\nblk: { break blk }",
            "const { a, b: { c = 5 } = {}, ...rest } = obj; let [x, , y = 3, ...zs] = arr; [x, y] = [y, x];\n({ a: x } = o);",
            "function f({ p = 1, q } = {}, [r] = [2], ...more) { return p + (q ?? 0) + r }",
            "log(o?.a?.b?.(), o.n?.x, o.z?.y.w, o?.['b'](), (o?.a).b, a ?? b, (a || b) ?? c);\nz ??= 5; z ||= 6; z &&= 7;",
            "class B { #secret = 42; static #count = 0; static { B.#count++ } #priv() { return this.#secret }\n\
             get s() { return this.#priv() } static has(o) { return #secret in o } accessor acc = 1 }",
            "class C extends B { constructor() { super(); this.k = 1 } get s() { return super.s + 1 } 'q'() {} 123() {} [k]() {} }",
            "async function* gen() { yield 1; yield* [2, 3]; await null; yield 4 }\n\
             for await (const v of gen()) log(v);\nconst g = async function* () {};\nconst h = async () => await 5;",
            "log(0.1 + 0.2, 1e21, 0xff, 0o17, 0b11, 1_000_000, 123n, .5, 5., 0.000001, 1e-7, -0, 2 ** -1, (-2) ** 2);",
            "var n = 010; if (a) function annexB() {} var yield = 3; log(typeof this, arguments.length, new.target);",
            "switch (q) { case 1: a(); case 'x': b(); break; default: c() }\ndo x(); while (false)\nfor (var i = ('x' in o) ? 1 : 0; i < 2; i++);",
            "try { a() } catch { b() } finally { c() }\ntry { a() } catch ({ message }) { log(message) }",
            "(function () { log('iife') })(); (() => {})(); ({ a: 1 }).a; (class {}); let q; ({ q } = { q: 2 });",
            "label: { }\n;;;\nif (a) ; else ;\nwhile (0) {}\nfor (const k in o) {}",
            "const big = 2n ** 64n; log(a ? b ? 1 : 2 : 3, (a, b) ? 1 : 2, (a = 2) && a, void 0, typeof typeof 1);",
            "new Foo; new (getClass())(); new (a.b().c); new a.b.C(); (new Date).getTime(); new (class {})();",
            "let f1 = x => ({ x }); let f2 = (a, b = 1, ...c) => { return a }; let f3 = async x => x;",
            "const obj = { 'héllo': 1, 'a-b': 2, 3: 3, '4': 4, '__proto__': null, ['__proto__']: 1 };",
            "if (shouldStop()) return;\nreturn await Promise.all([1, 2]);",
            "await Stels.sleep(1000)\n// }",
            "log('}) + (async function(){')\n/* }) */",
        ];
        for script in scripts {
            let out = minified(script);
            assert!(!out.contains("/*"), "comment left in {out}");
        }
    }

    #[test]
    fn strings_with_wrapper_text_and_trailing_line_comment_do_not_break_the_wrapper() {
        assert_eq!(minified("x() // }"), "x();");
        assert_eq!(minified("x() // })"), "x();");
        assert_eq!(
            minified("let s = \"})\"; let t = '*/'; return s + t + `})`"),
            "let s=`})`;let t=`*/`;return s+t+`})`;"
        );
        assert_eq!(minified(r"log(/\}\)\*\//.source)"), r"log(/\}\)\*\//.source);");
    }

    #[test]
    fn escaping_the_wrapper_is_a_parse_error() {
        for source in [
            "}); evil(); (async function(){",
            "}) + (async function(){",
            "})(), (async function(){",
            "}).call(this); evil(); (async function(){",
            "})\n//",
        ] {
            assert_error_at(source, 1, 1);
        }
        let e = assert_error_at("ok();\n  }); evil(); (async function(){\nmore()", 2, 3);
        assert!(e.message.contains('}'), "{e}");
    }

    #[test]
    fn parse_errors_on_the_first_line() {
        assert_error_at("const = ;", 1, 7);
        let e = assert_error_at("let s = \"abc", 1, 9);
        assert!(e.message.contains("Unterminated string"), "{e}");
        assert_error_at("}", 1, 1);
        assert_error_at("x();   }", 1, 8);
        assert_error_at("x(); /* })", 1, 6);
        assert_error_at("foo(`abc", 1, 5);
        assert_error_at("function f() {", 1, 15);
        assert_error_at("#!/usr/bin/env node", 1, 2);
    }

    #[test]
    fn parse_errors_on_a_later_line_and_column() {
        assert_error_at("a();\nb();\n  foo(;", 3, 7);
        assert_error_at("a();\r\nb();\r\n  foo(;", 3, 7);
        assert_error_at("a();\rb();\r  foo(;", 3, 7);
        assert_error_at("x();\n  }\n y()", 2, 3);
        assert_error_at("if (a) {\n  b();\n  }\n}\nfoo()", 4, 1);
        assert_error_at("let ok = 1;\n\tlet s = 'abc\nnext()", 2, 10);
        // Columns count characters, not bytes.
        assert_error_at("let é = \"ü\"; ü = ;", 1, 18);
        assert_error_at("x = '😀';\n\t😀 = 1", 2, 2);
    }

    #[test]
    fn the_error_display_names_message_line_and_column() {
        let e = error("a();\n  foo(;");
        assert_eq!(e.to_string(), format!("{} at line 2, column 7", e.message));
    }

    #[test]
    fn early_errors_from_semantic_checks_are_parse_errors() {
        let e = assert_error_at("let a; let a;", 1, 12);
        assert!(e.message.contains("already been declared"), "{e}");
        assert_error_at("x();\nbreak;", 2, 1);
        assert_error_at("continue;", 1, 1);
        assert_error_at("x: x: 1;", 1, 4);
        assert_error_at("class A { #x; #x }", 1, 15);
        assert_error_at("this.#y;", 1, 6);
        assert_error_at("import x from 'y';", 1, 1);
        assert_error_at("export const e = 1;", 1, 1);
        assert_error_at("'use strict'; with (a) {}", 1, 15);
        assert_error_at("'use strict'; var n = 010;", 1, 23);
        assert_error_at("super.x;", 1, 1);
        assert_error_at("let x = /(/;", 1, 10);
        assert_error_at("function k() { await x; }", 1, 16);
        assert_error_at("var await = 1;", 1, 5);
        assert_error_at("yield 1;", 1, 1);
    }

    #[test]
    fn too_long_scripts_are_rejected() {
        let source = format!("x();\n{}", " ".repeat(MAX_SCRIPT_BYTES));
        let e = assert_error_at(&source, 2, MAX_SCRIPT_BYTES as u32 - 4);
        assert!(e.message.contains("longer than"), "{e}");
        let fits = format!("x();{}", " ".repeat(MAX_SCRIPT_BYTES - 4));
        assert_eq!(minified(&fits), "x();");
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        let depth = 20_000;
        let arrays = format!("x = {}{};", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(minified(&arrays), arrays.replace(' ', ""));
        let unclosed = format!("x = {}", "(".repeat(depth * 2));
        assert!(minify_script(&unclosed).is_err());
        let groups = format!("x = /{}a{}/;", "(".repeat(depth), ")".repeat(depth));
        assert_eq!(minified(&groups), groups.replace(' ', ""));
        let objects = format!("x = {}1{};", "{a:".repeat(depth), "}".repeat(depth));
        assert_eq!(minified(&objects), objects.replace(' ', ""));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_deepest_pooled_scripts_fit_the_pooled_threads() {
        // The longest script the pooled threads take, nested as deep as its length allows.
        let depth = (POOLED_SCRIPT_BYTES - 8) / 2;
        let groups = format!("x=/{}a{}/;", "(".repeat(depth), ")".repeat(depth));
        assert!(groups.len() <= POOLED_SCRIPT_BYTES);
        assert_eq!(minify_script_off_thread(groups.clone()).await.unwrap(), groups);
        let unclosed = format!("x={}", "[".repeat(POOLED_SCRIPT_BYTES - 2));
        assert!(minify_script_off_thread(unclosed).await.is_err());
        // Many at once: more than the queue holds go to threads of their own.
        let scripts = (0..POOL_QUEUE * 2).map(|i| minify_script_off_thread(format!("let a{i} = {i} ;")));
        let results = futures_util::future::join_all(scripts).await;
        for (i, result) in results.into_iter().enumerate() {
            assert_eq!(result.unwrap(), format!("let a{i}={i};"));
        }
    }

    #[test]
    fn line_column_counts_ecmascript_line_terminators_and_characters() {
        assert_eq!(line_column("abc", 0), (1, 1));
        assert_eq!(line_column("abc", 2), (1, 3));
        assert_eq!(line_column("a\nb", 2), (2, 1));
        assert_eq!(line_column("a\r\nb", 3), (2, 1));
        assert_eq!(line_column("a\rb", 2), (2, 1));
        assert_eq!(line_column("a\u{2028}b\u{2029}c", 7), (3, 1));
        assert_eq!(line_column("é😀x", 6), (1, 3));
        assert_eq!(line_column("ab", 99), (1, 3));
    }
}
