//! Safe arithmetic evaluator behind the gateway's server-side `calculator` tool.
//!
//! Expressions arrive in model-generated tool-call arguments, so they are
//! treated as hostile: length and nesting are capped before recursion can grow
//! the stack, nothing indexes or unwraps on user data, and every intermediate
//! value must stay finite so `inf`/`NaN` never reach the caller.
//!
//! Grammar, loosest binding first (`^` binds tighter than unary minus, as in
//! Python's `**`, so `-2^2 == -4` and `2^-3^2 == 2^(-(3^2))`):
//!
//! ```text
//! expr    := term (('+' | '-') term)*
//! term    := unary (('*' | '/' | '%') unary)*
//! unary   := ('+' | '-')* power
//! power   := primary ('^' ('+' | '-')* primary)*          right-associative
//! primary := number | "pi" | "e" | '(' expr ')' | func '(' expr (',' expr)* ')'
//! ```

use std::f64::consts::{E, PI};

/// Longest accepted expression, in bytes.
pub const MAX_LEN: usize = 1024;
/// Deepest accepted nesting of parentheses and function calls.
pub const MAX_DEPTH: usize = 64;

/// Why an expression could not be evaluated. Every `usize` is a byte offset
/// into the input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalcError {
    /// Input longer than [`MAX_LEN`] bytes.
    #[error("expression too long (max {MAX_LEN} bytes)")]
    TooLong,
    /// Parentheses or function calls nested deeper than [`MAX_DEPTH`].
    #[error("nesting too deep (max {MAX_DEPTH})")]
    TooDeep,
    /// Input is empty or only whitespace.
    #[error("empty expression")]
    Empty,
    /// A token or character the grammar does not allow where it appears.
    #[error("unexpected `{0}` at {1}")]
    UnexpectedToken(String, usize),
    /// Input ended where more was required.
    #[error("unexpected end of expression")]
    UnexpectedEnd,
    /// A malformed numeric literal such as `1.2.3` or `1e`.
    #[error("invalid number `{0}` at {1}")]
    InvalidNumber(String, usize),
    /// A call to a function that does not exist.
    #[error("unknown function `{0}`")]
    UnknownFunction(String, usize),
    /// A name that is neither a constant nor a function.
    #[error("unknown identifier `{0}`")]
    UnknownIdentifier(String, usize),
    /// Function name, expected argument count (`"1"` or `"at least 1"`), actual count.
    #[error("`{0}` expects {1} argument(s), got {2}")]
    Arity(String, &'static str, usize),
    /// Right operand of `/` or `%` is zero; the offset is the operator's.
    #[error("division by zero")]
    DivisionByZero(usize),
    /// A literal, intermediate or final value overflowed or became NaN.
    #[error("result is not finite")]
    NotFinite,
}

type Result<T> = std::result::Result<T, CalcError>;

/// Evaluates an arithmetic expression such as `2 * (3 + sqrt(16)) ^ 2`.
///
/// # Errors
/// A [`CalcError`] for malformed, oversized or over-nested input, unknown
/// names, wrong arity, division by zero, or any non-finite value.
pub fn evaluate(expr: &str) -> Result<f64> {
    if expr.len() > MAX_LEN {
        return Err(CalcError::TooLong);
    }
    if expr.trim().is_empty() {
        return Err(CalcError::Empty);
    }
    let mut p = Parser {
        src: expr,
        pos: 0,
        depth: 0,
    };
    let value = p.binary(false)?;
    match p.peek() {
        None => Ok(value),
        Some(_) => Err(p.unexpected()),
    }
}

/// Formats a result for the tool reply: integers within ±2^53 (where every
/// integer is exact) print without a decimal point, anything else uses `{}`.
#[must_use]
pub fn format_number(x: f64) -> String {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if x.fract() == 0.0 && x.abs() <= EXACT {
        // `as` is lossless here; it also folds -0.0 into "0".
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn finite(x: f64) -> Result<f64> {
    x.is_finite().then_some(x).ok_or(CalcError::NotFinite)
}

#[derive(Clone, Copy)]
enum Func {
    Unary(fn(f64) -> f64),
    Fold(fn(f64, f64) -> f64),
}

#[rustfmt::skip]
fn lookup(name: &str) -> Option<Func> {
    use Func::*;
    Some(match name {
        "sqrt" => Unary(f64::sqrt), "abs" => Unary(f64::abs), "exp" => Unary(f64::exp),
        "ln" => Unary(f64::ln), "log10" => Unary(f64::log10), "log2" => Unary(f64::log2),
        "sin" => Unary(f64::sin), "cos" => Unary(f64::cos), "tan" => Unary(f64::tan),
        "asin" => Unary(f64::asin), "acos" => Unary(f64::acos), "atan" => Unary(f64::atan),
        "floor" => Unary(f64::floor), "ceil" => Unary(f64::ceil), "round" => Unary(f64::round),
        "min" => Fold(f64::min), "max" => Fold(f64::max),
        _ => return None,
    })
}

fn call(f: Func, name: &str, args: &[f64]) -> Result<f64> {
    let expected = match (f, args) {
        (Func::Unary(f), [x]) => return finite(f(*x)),
        (Func::Fold(f), [x, rest @ ..]) => return Ok(rest.iter().fold(*x, |a, &b| f(a, b))),
        (Func::Unary(_), _) => "1",
        (Func::Fold(_), _) => "at least 1",
    };
    Err(CalcError::Arity(name.into(), expected, args.len()))
}

/// Scans and evaluates in one pass. `pos` only ever advances by whole chars,
/// so every `get` below lands on a char boundary; `get` is used anyway so a
/// bug here degrades into a parse error instead of a panic.
struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or_default()
    }

    /// Skips whitespace and returns the next char without consuming it.
    fn peek(&mut self) -> Option<char> {
        let rest = self.rest();
        let ws = rest.len() - rest.trim_start().len();
        self.pos += ws;
        rest.get(ws..)?.chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(c);
        self.pos += usize::from(hit);
        hit
    }

    fn expect(&mut self, c: char) -> Result<()> {
        self.eat(c).then_some(()).ok_or_else(|| self.unexpected())
    }

    fn take_while(&mut self, mut keep: impl FnMut(char) -> bool) -> &'a str {
        let rest = self.rest();
        let n = rest.find(|c| !keep(c)).unwrap_or(rest.len());
        self.pos += n;
        rest.get(..n).unwrap_or_default()
    }

    fn unexpected(&mut self) -> CalcError {
        let next = self.peek();
        let pos = self.pos;
        let word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_');
        let token = match next {
            None => return CalcError::UnexpectedEnd,
            Some(c) if word(c) => self.take_while(word).into(),
            // Escaped so control characters can't garble logs or the reply.
            Some(c) => c.escape_debug().to_string(),
        };
        CalcError::UnexpectedToken(token, pos)
    }

    /// `expr` when `tight` is false (`+ -`), `term` when true (`* / %`); both
    /// left-associative.
    fn binary(&mut self, tight: bool) -> Result<f64> {
        let operand = |p: &mut Self| if tight { p.unary() } else { p.binary(true) };
        let mut acc = operand(self)?;
        loop {
            let op = match self.peek() {
                Some(c @ ('+' | '-')) if !tight => c,
                Some(c @ ('*' | '/' | '%')) if tight => c,
                _ => return Ok(acc),
            };
            let pos = self.pos;
            self.pos += 1;
            let rhs = operand(self)?;
            acc = finite(match op {
                '+' => acc + rhs,
                '-' => acc - rhs,
                '*' => acc * rhs,
                _ if rhs == 0.0 => return Err(CalcError::DivisionByZero(pos)),
                '/' => acc / rhs,
                _ => acc % rhs,
            })?;
        }
    }

    fn signs(&mut self) -> f64 {
        let mut sign = 1.0;
        while let Some(c @ ('+' | '-')) = self.peek() {
            self.pos += 1;
            sign *= if c == '-' { -1.0 } else { 1.0 };
        }
        sign
    }

    // Signs and `^` chains are looped rather than recursed, so only
    // parentheses and calls (bounded by MAX_DEPTH) can deepen the stack.
    fn unary(&mut self) -> Result<f64> {
        let sign = self.signs();
        let base = self.primary()?;
        let mut chain = Vec::new();
        while self.eat('^') {
            let s = self.signs();
            chain.push((s, self.primary()?));
        }
        let mut exp = None;
        for (s, p) in chain.into_iter().rev() {
            exp = Some(s * exp.map_or(Ok(p), |e| finite(p.powf(e)))?);
        }
        Ok(sign * exp.map_or(Ok(base), |e| finite(base.powf(e)))?)
    }

    fn nested<T>(&mut self, inner: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(CalcError::TooDeep);
        }
        let out = inner(self);
        self.depth -= 1;
        out
    }

    fn primary(&mut self) -> Result<f64> {
        let next = self.peek();
        let pos = self.pos;
        match next {
            Some('(') => {
                self.pos += 1;
                let v = self.nested(|p| p.binary(false))?;
                self.expect(')').map(|()| v)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => {
                // Scan greedily and let `str::parse` judge, so `1.2.3` or `1e`
                // is reported as one bad literal rather than a confusing token.
                let mut prev = ' ';
                let text = self.take_while(|c| {
                    let ok = c.is_ascii_digit()
                        || matches!(c, '.' | 'e' | 'E')
                        || (matches!(c, '+' | '-') && matches!(prev, 'e' | 'E'));
                    prev = c;
                    ok
                });
                let Ok(value) = text.parse() else {
                    return Err(CalcError::InvalidNumber(text.into(), pos));
                };
                finite(value)
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
                if let Some(f) = lookup(name) {
                    self.expect('(')?;
                    let args = self.nested(Self::args)?;
                    return call(f, name, &args);
                }
                match (name, self.peek() == Some('(')) {
                    ("pi", false) => Ok(PI),
                    ("e", false) => Ok(E),
                    (_, true) => Err(CalcError::UnknownFunction(name.into(), pos)),
                    (_, false) => Err(CalcError::UnknownIdentifier(name.into(), pos)),
                }
            }
            _ => Err(self.unexpected()),
        }
    }

    fn args(&mut self) -> Result<Vec<f64>> {
        let mut args = Vec::new();
        while !self.eat(')') {
            if !args.is_empty() {
                self.expect(',')?;
            }
            args.push(self.binary(false)?);
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(cases: &[(&str, f64)]) {
        for &(s, want) in cases {
            let got = evaluate(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            assert!((got - want).abs() < 1e-12, "{s}: {got}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn precedence_associativity_constants_and_functions() {
        check(&[
            ("1+2*3", 7.0), ("(1+2)*3", 9.0), ("2*3^2", 18.0), ("-2^2", -4.0), ("(-2)^2", 4.0),
            ("2^-1", 0.5), ("2^3^2", 512.0), ("2^-3^2", 2f64.powi(-9)), ("10-4-3", 3.0),
            ("64/4/2", 8.0), ("10/4*2", 5.0), ("7%3", 1.0), ("-7%3", -1.0), ("5.5%2", 1.5),
            ("2*-3", -6.0), ("--3", 3.0), ("+-+3", -3.0), ("1e3", 1000.0), ("2.5E-1", 0.25),
            ("1e+2", 100.0), (".5", 0.5), ("5.", 5.0), (" \t1 +\n 2 \u{a0}", 3.0),
        ]);
        check(&[
            ("pi", PI), ("2*e", 2.0 * E), ("sqrt(16)", 4.0), ("abs(-3)", 3.0), ("ln(e)", 1.0),
            ("log10(1000)", 3.0), ("log2(8)", 3.0), ("exp(0)", 1.0), ("sin(0)", 0.0),
            ("cos(0)", 1.0), ("tan(0)", 0.0), ("asin(1)", PI / 2.0), ("acos(1)", 0.0),
            ("atan(1)", PI / 4.0), ("floor(-1.5)", -2.0), ("ceil(1.2)", 2.0), ("round(2.5)", 3.0),
            ("min(3, 1, 2)", 1.0), ("max(4)", 4.0), ("max(1, min(5, 2)) * 2", 4.0),
            ("sqrt(abs(-16)) + 1", 5.0), ("sin(pi / 2) ^ 2", 1.0), ("-sqrt ( 4 )", -2.0),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn error_kinds() {
        let end = "unexpected end of expression";
        let (long, deep) = ("1+".repeat(600), format!("{}1{}", "(".repeat(65), ")".repeat(65)));
        let cases = [
            (long.as_str(), "expression too long (max 1024 bytes)"), (&deep, "nesting too deep (max 64)"),
            ("", "empty expression"), (" \n ", "empty expression"),
            ("1 + $", "unexpected `$` at 4"), ("1 + é", "unexpected `é` at 4"),
            ("1 + \0", "unexpected `\\0` at 4"),
            ("(1 + 2))", "unexpected `)` at 7"), ("2 (3)", "unexpected `(` at 2"),
            ("min(1 2.5)", "unexpected `2.5` at 6"), ("sqrt 4", "unexpected `4` at 5"),
            ("1 +", end), ("(1", end), ("sqrt(", end), ("min(1,", end), ("-", end), ("2^", end),
            ("1.2.3", "invalid number `1.2.3` at 0"), ("2 * 1e", "invalid number `1e` at 4"),
            (".", "invalid number `.` at 0"), ("foo(1)", "unknown function `foo`"),
            ("pi(1)", "unknown function `pi`"), ("x + 1", "unknown identifier `x`"),
            ("sqrt(1, 2)", "`sqrt` expects 1 argument(s), got 2"),
            ("abs()", "`abs` expects 1 argument(s), got 0"),
            ("min()", "`min` expects at least 1 argument(s), got 0"),
            ("1 % 0", "division by zero"), ("1/(2-2)", "division by zero"),
            ("5/-0", "division by zero"), ("1 % (0*-1)", "division by zero"),
        ];
        for (s, want) in cases {
            assert_eq!(evaluate(s).expect_err(s).to_string(), want, "{s:?}");
        }
        assert_eq!(evaluate("1 / 0"), Err(CalcError::DivisionByZero(2)));
        assert_eq!(evaluate("2 * y"), Err(CalcError::UnknownIdentifier("y".into(), 4)));
        let overflow = ["1e308*10", "1e999", "0^-1", "1/(1e308*10)", "1e308+1e308"];
        let nan = ["sqrt(-1)", "ln(0)", "(-8)^(1/3)", "asin(2)"];
        for s in overflow.into_iter().chain(nan) {
            assert_eq!(evaluate(s), Err(CalcError::NotFinite), "{s}");
        }
    }

    #[test]
    fn nesting_limit_is_exact_and_fits_a_small_stack() {
        let nest = |open: &str, n| format!("{}1{}", open.repeat(n), ")".repeat(n));
        assert_eq!(evaluate(&nest("(", MAX_DEPTH)), Ok(1.0));
        for open in ["(", "-(", "abs(", "min(1,", "2^("] {
            let deep = evaluate(&nest(open, MAX_DEPTH + 1));
            assert_eq!(deep, Err(CalcError::TooDeep), "{open}");
        }
        // Signs and `^` chains are iterative, so they have no depth limit.
        assert_eq!(evaluate(&format!("{}1", "-".repeat(1001))), Ok(-1.0));
        assert_eq!(evaluate(&vec!["1"; 400].join("^")), Ok(1.0));
        // Half of std's default 2 MiB thread stack, even in debug builds.
        let worst = nest("min(-", MAX_DEPTH);
        let thread = std::thread::Builder::new().stack_size(1 << 20);
        let run = thread.spawn(move || evaluate(&worst)).expect("spawn");
        assert_eq!(run.join().expect("no stack overflow"), Ok(1.0));
    }

    #[test]
    #[rustfmt::skip]
    fn formats_numbers() {
        for (x, want) in [
            (12.0, "12"), (-3.0, "-3"), (-0.0, "0"), (0.5, "0.5"), (0.1 + 0.2, "0.30000000000000004"),
            (9_007_199_254_740_992.0, "9007199254740992"), (-1.5e-7, "-0.00000015"),
            (1e20, "100000000000000000000"), (f64::NAN, "NaN"),
        ] {
            assert_eq!(format_number(x), want);
        }
    }

    #[derive(Debug, Clone)]
    enum Ast {
        Num(i64),
        /// Left, operator, right, and whether to add redundant parentheses.
        Bin(Box<Ast>, char, Box<Ast>, bool),
    }

    /// At most 4 levels (16 leaves of magnitude <= 9), so every intermediate
    /// stays below 9^16 < 2^53 and f64 arithmetic must match i128 exactly.
    fn arb_ast() -> impl Strategy<Value = Ast> {
        let leaf = (-9i64..=9).prop_map(Ast::Num);
        leaf.prop_recursive(4, 16, 2, |inner| {
            let op = prop::sample::select(vec!['+', '-', '*']);
            (inner.clone(), op, inner, any::<bool>())
                .prop_map(|(l, op, r, paren)| Ast::Bin(Box::new(l), op, Box::new(r), paren))
        })
    }

    /// Minimal parentheses (plus random redundant ones), so the parser's own
    /// precedence and left-associativity decide the grouping.
    fn render(a: &Ast, min_prec: u8) -> String {
        let (l, op, r, extra) = match a {
            Ast::Num(n) => return n.to_string(),
            Ast::Bin(l, op, r, extra) => (l, op, r, extra),
        };
        let p = if *op == '*' { 2 } else { 1 };
        let s = format!("{} {op} {}", render(l, p), render(r, p + 1));
        if *extra || p < min_prec {
            format!("({s})")
        } else {
            s
        }
    }

    fn reference(a: &Ast) -> i128 {
        match a {
            Ast::Num(n) => i128::from(*n),
            Ast::Bin(l, '+', r, _) => reference(l) + reference(r),
            Ast::Bin(l, '-', r, _) => reference(l) - reference(r),
            Ast::Bin(l, _, r, _) => reference(l) * reference(r),
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_unicode(s in ".{0,2000}") {
            let _ = evaluate(&s).map_err(|e| e.to_string());
        }

        #[test]
        fn never_panics_on_bytes(b in prop::collection::vec(any::<u8>(), 0..2000)) {
            let _ = evaluate(&String::from_utf8_lossy(&b)).map_err(|e| e.to_string());
        }

        #[test]
        fn junk_never_yields_non_finite(s in "([0-9.eE+*/%^(),-]|[ a-z]|sqrt\\(|min\\(|pi){0,400}") {
            if let Ok(v) = evaluate(&s) {
                prop_assert!(v.is_finite());
            }
        }

        #[test]
        fn matches_reference(ast in arb_ast()) {
            let (s, want) = (render(&ast, 0), reference(&ast));
            prop_assert!(want.abs() < 1 << 53);
            prop_assert_eq!(evaluate(&s), Ok(want as f64), "{}", s);
        }

        #[test]
        fn deep_parens_hit_the_limit(n in MAX_DEPTH + 1..=511, closed: bool) {
            let s = format!("{}1{}", "(".repeat(n), ")".repeat(if closed { n } else { 0 }));
            prop_assert_eq!(evaluate(&s), Err(CalcError::TooDeep));
        }
    }
}
