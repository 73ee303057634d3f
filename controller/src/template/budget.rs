//! The bounds a template runs under, and the meter that enforces them while it runs.

/// Largest template text. A Secret holds at most 1 MiB, and templates are written by hand;
/// 256 KiB is far above any real one and keeps parsing (linear) cheap.
pub const MAX_TEMPLATE_BYTES: usize = 256 << 10;

/// Deepest nesting of control structures and parentheses in one template. Real templates nest
/// a handful of levels; 32 leaves room, and bounds the recursion of the parser, the checker
/// and the evaluator: the test `deepest_template_fits_a_2_mib_stack` renders the deepest
/// template (nested to this bound, called through `template` to [`MAX_TEMPLATE_CALLS`])
/// on a 2 MiB thread.
pub const MAX_NESTING: usize = 32;

/// Deepest chain of `template`/`block` calls. Go allows 100,000, which is what let a recursive
/// `define` exhaust the stack; real templates call one or two levels deep.
pub const MAX_TEMPLATE_CALLS: usize = 8;

/// Variables in scope at once. Real templates use a handful; the bound keeps each lookup (a
/// search from the innermost outwards, at parse and at run time) to a few comparisons, so the
/// number of variables cannot make parsing or running quadratic.
pub const MAX_VARIABLES: usize = 100;

/// Evaluation steps per template: every node, command, operand, function call and range
/// iteration is one. A real template takes hundreds; a million takes well under a second on
/// one core, so nested ranges (k^depth iterations) stop early.
pub const MAX_STEPS: u64 = 1_000_000;

/// Bytes one template may output. A Secret holds at most 1 MiB in all.
pub const MAX_OUTPUT: usize = 1 << 20;

/// Longest string any function may return (a Secret's size: nothing longer can be used).
/// Checked before the string is built, so nested `repeat`/`indent` cannot multiply.
pub const MAX_STRING: usize = 1 << 20;

/// Bytes all function calls together may read and write, plus the output. Each step's work is
/// then bounded in total, not only in count, and so is the memory held by built strings:
/// 32 MiB is 32 times the largest Secret, while two unseal threads stay far below the
/// controller's 256 MiB limit.
pub const MAX_WORK_BYTES: u64 = 32 << 20;

/// Widest `printf` width or precision. Columns in config files are tens wide.
pub const MAX_FORMAT_WIDTH: usize = 4096;

/// The bounds of one render; [`Budget::default`] holds the constants above (tests use smaller
/// ones).
#[derive(Debug, Clone)]
pub struct Budget {
    pub max_template_bytes: usize,
    pub max_nesting: usize,
    pub max_template_calls: usize,
    pub max_steps: u64,
    pub max_output: usize,
    pub max_string: usize,
    pub max_work_bytes: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_template_bytes: MAX_TEMPLATE_BYTES,
            max_nesting: MAX_NESTING,
            max_template_calls: MAX_TEMPLATE_CALLS,
            max_steps: MAX_STEPS,
            max_output: MAX_OUTPUT,
            max_string: MAX_STRING,
            max_work_bytes: MAX_WORK_BYTES,
        }
    }
}

/// Why a render stopped while running. For tests and nothing else: it is never shown, because
/// which reason applies may depend on the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason(pub &'static str);

/// What a render has used so far.
#[derive(Debug)]
pub(crate) struct Meter<'b> {
    pub(crate) budget: &'b Budget,
    steps: u64,
    work: u64,
}

impl<'b> Meter<'b> {
    pub(crate) fn new(budget: &'b Budget) -> Self {
        Meter {
            budget,
            steps: 0,
            work: 0,
        }
    }

    /// One step of evaluation.
    pub(crate) fn step(&mut self) -> Result<(), Reason> {
        self.steps += 1;
        if self.steps > self.budget.max_steps {
            Err(Reason("step budget exhausted"))
        } else {
            Ok(())
        }
    }

    /// Bytes read or written.
    pub(crate) fn work(&mut self, bytes: usize) -> Result<(), Reason> {
        self.work = self.work.saturating_add(bytes as u64);
        if self.work > self.budget.max_work_bytes {
            Err(Reason("work budget exhausted"))
        } else {
            Ok(())
        }
    }

    /// About to build a string of (at most) `len` bytes: refused past the string bound,
    /// counted as work.
    pub(crate) fn string(&mut self, len: usize) -> Result<(), Reason> {
        if len > self.budget.max_string {
            return Err(Reason("string too long"));
        }
        self.work(len)
    }
}
