//! Running a checked tree over the values, under a [`Budget`].
//!
//! Recursion follows the tree, whose depth the parser bounds, and `template` calls, which
//! [`Budget::max_template_calls`] bounds: together they fit a 2 MiB thread stack. Every node,
//! command, operand, function call and range iteration is a step; every byte a function reads or
//! builds, and every byte output, is work. Nothing here may say why it failed in a way that is
//! shown: [`Reason`]s are for tests.

use zeroize::Zeroizing;

use super::budget::{Budget, Meter, Reason};
use super::funcs;
use super::parser::{Arg, Branch, Command, List, Node, Pipeline, Tree};
use super::value::{Data, Value, append_wiped, value_len, write_value};

type Result<T> = std::result::Result<T, Reason>;

pub(crate) fn run(tree: &Tree, data: &Data, budget: &Budget) -> Result<Zeroizing<Vec<u8>>> {
    let mut eval = Eval {
        tree,
        meter: Meter::new(budget),
        vars: vec![("$", Value::Data(data))],
        out: Zeroizing::new(Vec::new()),
        calls: 0,
    };
    match eval.list(&tree.root, &Value::Data(data))? {
        Flow::Normal => Ok(std::mem::take(&mut eval.out)),
        Flow::Break | Flow::Continue => Err(Reason("break or continue outside range")),
    }
}

/// How a list ended.
enum Flow {
    Normal,
    Break,
    Continue,
}

struct Eval<'a, 'b> {
    tree: &'a Tree,
    meter: Meter<'b>,
    /// Variables in scope, innermost last.
    vars: Vec<(&'a str, Value<'a>)>,
    out: Zeroizing<Vec<u8>>,
    /// `template` calls in progress.
    calls: usize,
}

impl<'a> Eval<'a, '_> {
    fn list(&mut self, list: &'a List, dot: &Value<'a>) -> Result<Flow> {
        for node in list {
            self.meter.step()?;
            match node {
                Node::Text(text) => self.write(text)?,
                Node::Action(pipe) => {
                    let value = self.pipeline(pipe, dot)?;
                    if pipe.vars.is_empty() {
                        self.print(&value)?;
                    }
                }
                Node::If(branch) => {
                    let flow = self.if_or_with(branch, dot, false)?;
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::With(branch) => {
                    let flow = self.if_or_with(branch, dot, true)?;
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range(branch) => {
                    let flow = self.range(branch, dot)?;
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Template { name, pipe, .. } => self.template(name, pipe.as_ref(), dot)?,
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if self.out.len() + bytes.len() > self.meter.budget.max_output {
            return Err(Reason("output too long"));
        }
        self.meter.work(bytes.len())?;
        append_wiped(&mut self.out, bytes);
        Ok(())
    }

    /// Go prints a missing value as `<no value>`.
    fn print(&mut self, value: &Value<'a>) -> Result<()> {
        match value {
            Value::Str(s) => self.write(s.bytes()),
            Value::Nil => self.write(b"<no value>"),
            other => {
                let mut text = Zeroizing::new(Vec::with_capacity(value_len(other)));
                write_value(&mut text, other);
                self.write(&text)
            }
        }
    }

    fn if_or_with(&mut self, branch: &'a Branch, dot: &Value<'a>, with: bool) -> Result<Flow> {
        let mark = self.vars.len();
        let value = self.pipeline(&branch.pipe, dot)?;
        let flow = if value.truth() {
            self.list(&branch.list, if with { &value } else { dot })?
        } else if let Some(otherwise) = &branch.otherwise {
            self.list(otherwise, dot)?
        } else {
            Flow::Normal
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn range(&mut self, branch: &'a Branch, dot: &Value<'a>) -> Result<Flow> {
        let mark = self.vars.len();
        let value = self.pipeline_value(&branch.pipe, dot)?;
        let items: Box<dyn Iterator<Item = (Value<'a>, Value<'a>)> + 'a> = match value {
            Value::Data(d) => Box::new(
                d.iter()
                    .map(|(k, v)| (Value::borrowed(k.as_bytes()), Value::borrowed(v))),
            ),
            Value::Int(n) => Box::new((0..n.max(0)).map(|i| (Value::Int(i), Value::Int(i)))),
            Value::Nil => Box::new(std::iter::empty()),
            _ => return Err(Reason("range over a value that cannot be iterated")),
        };
        let mut any = false;
        let mut flow = Flow::Normal;
        for (key, element) in items {
            self.meter.step()?;
            any = true;
            let iteration = self.vars.len();
            match branch.pipe.vars.as_slice() {
                [] => {}
                [v] => self.vars.push((v.as_str(), element.clone())),
                [k, v] => {
                    self.vars.push((k.as_str(), key));
                    self.vars.push((v.as_str(), element.clone()));
                }
                _ => return Err(Reason("too many range variables")),
            }
            let body = self.list(&branch.list, &element)?;
            self.vars.truncate(iteration);
            if matches!(body, Flow::Break) {
                break;
            }
        }
        // Break and continue in `else` belong to an enclosing range.
        if let (false, Some(otherwise)) = (any, &branch.otherwise) {
            flow = self.list(otherwise, dot)?;
        }
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn template(&mut self, name: &str, pipe: Option<&'a Pipeline>, dot: &Value<'a>) -> Result<()> {
        let body = self
            .tree
            .defines
            .get(name)
            .ok_or(Reason("no such template"))?;
        if self.calls >= self.meter.budget.max_template_calls {
            return Err(Reason("template calls nested too deeply"));
        }
        let new_dot = match pipe {
            Some(pipe) => self.pipeline(pipe, dot)?,
            None => Value::Nil,
        };
        // A called template sees only `$`, bound to its dot.
        let outer = std::mem::replace(&mut self.vars, vec![("$", new_dot.clone())]);
        self.calls += 1;
        let result = self.list(body, &new_dot);
        self.calls -= 1;
        self.vars = outer;
        result.map(|_| ())
    }

    /// A pipeline's value, binding (`:=`) or assigning (`=`) its variables.
    fn pipeline(&mut self, pipe: &'a Pipeline, dot: &Value<'a>) -> Result<Value<'a>> {
        let value = self.pipeline_value(pipe, dot)?;
        for name in &pipe.vars {
            if pipe.assign {
                let slot = self
                    .vars
                    .iter_mut()
                    .rev()
                    .find(|(n, _)| n == name)
                    .ok_or(Reason("undefined variable"))?;
                slot.1 = value.clone();
            } else {
                self.vars.push((name.as_str(), value.clone()));
            }
        }
        Ok(value)
    }

    fn pipeline_value(&mut self, pipe: &'a Pipeline, dot: &Value<'a>) -> Result<Value<'a>> {
        let mut last = None;
        for command in &pipe.commands {
            last = Some(self.command(command, dot, last)?);
        }
        last.ok_or(Reason("empty pipeline"))
    }

    fn command(
        &mut self,
        command: &'a Command,
        dot: &Value<'a>,
        piped: Option<Value<'a>>,
    ) -> Result<Value<'a>> {
        self.meter.step()?;
        let (first, rest) = command.args.split_first().ok_or(Reason("empty command"))?;
        match first {
            Arg::Func(name) => self.call(name, rest, dot, piped),
            _ if rest.is_empty() && piped.is_none() => self.arg(first, dot),
            _ => Err(Reason("arguments to a non-function")),
        }
    }

    fn call(
        &mut self,
        name: &str,
        operands: &'a [Arg],
        dot: &Value<'a>,
        piped: Option<Value<'a>>,
    ) -> Result<Value<'a>> {
        self.meter.step()?;
        if name == "and" || name == "or" {
            // Short-circuit: the first false (and) or true (or) operand, else the last.
            let stop_when = name == "or";
            let mut last = Value::Nil;
            for operand in operands {
                last = self.arg(operand, dot)?;
                if last.truth() == stop_when {
                    return Ok(last);
                }
            }
            if let Some(value) = piped {
                last = value;
            }
            return Ok(last);
        }
        let mut args = Vec::with_capacity(operands.len() + 1);
        for operand in operands {
            args.push(self.arg(operand, dot)?);
        }
        args.extend(piped);
        funcs::call(name, &args, &mut self.meter)
    }

    fn arg(&mut self, arg: &'a Arg, dot: &Value<'a>) -> Result<Value<'a>> {
        self.meter.step()?;
        match arg {
            Arg::Func(name) => self.call(name, &[], dot, None),
            Arg::Dot => Ok(dot.clone()),
            Arg::Nil => Ok(Value::Nil),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Int(i) => Ok(Value::Int(*i)),
            Arg::Float(f) => Ok(Value::Float(*f)),
            Arg::Str(s) => Ok(Value::borrowed(s)),
            Arg::Field(fields) => fields_of(dot.clone(), fields),
            Arg::Variable(name, fields) => {
                let value = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or(Reason("undefined variable"))?;
                fields_of(value, fields)
            }
            Arg::Pipe(pipe, fields) => {
                let value = self.pipeline_value(pipe, dot)?;
                fields_of(value, fields)
            }
        }
    }
}

/// `.a.b` from `value`: only the value map has fields, and a missing key is an error.
fn fields_of<'a>(mut value: Value<'a>, fields: &[String]) -> Result<Value<'a>> {
    for field in fields {
        value = match value {
            Value::Data(d) => Value::borrowed(d.get(field).ok_or(Reason("missing key"))?),
            _ => return Err(Reason("field of a value that has none")),
        };
    }
    Ok(value)
}
