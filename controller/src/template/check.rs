//! What can be known about a template before running it, reported in detail.
//!
//! Everything here depends on the template text and the key names only (never on a value), so
//! its messages may name what is wrong and where: unknown functions, argument counts, operands
//! that cannot be called, templates never defined, keys not in the data, `printf` formats that
//! cannot work.

use super::format;
use super::funcs::arity;
use super::message::{position, shown};
use super::parser::{Arg, Command, List, Node, Pipeline, Tree};
use super::value::Data;

pub(crate) fn check(tree: &Tree, data: &Data, text: &str) -> Result<(), String> {
    let checker = Checker { tree, data, text };
    checker.list(&tree.root, Dot::Root, Dot::Root)?;
    for body in tree.defines.values() {
        checker.list(body, Dot::Unknown, Dot::Unknown)?;
    }
    Ok(())
}

/// Whether `.` (and `$`) is known to be the value map here.
#[derive(Clone, Copy, PartialEq)]
enum Dot {
    Root,
    Unknown,
}

struct Checker<'t> {
    tree: &'t Tree,
    data: &'t Data,
    text: &'t str,
}

impl Checker<'_> {
    fn error(&self, pos: usize, message: String) -> String {
        format!("{}: {message}", position(self.text, pos))
    }

    /// `dot` is what `.` is, `dollar` what `$` is (only `.` moves inside `with` and `range`).
    fn list(&self, list: &List, dot: Dot, dollar: Dot) -> Result<(), String> {
        for node in list {
            self.node(node, dot, dollar)?;
        }
        Ok(())
    }

    fn node(&self, node: &Node, dot: Dot, dollar: Dot) -> Result<(), String> {
        match node {
            Node::Text(_) | Node::Break | Node::Continue => Ok(()),
            Node::Action(pipe) => self.pipeline(pipe, dot, dollar),
            Node::If(branch) | Node::With(branch) | Node::Range(branch) => {
                self.pipeline(&branch.pipe, dot, dollar)?;
                let inner = if matches!(node, Node::If(_)) {
                    dot
                } else {
                    Dot::Unknown
                };
                self.list(&branch.list, inner, dollar)?;
                if let Some(otherwise) = &branch.otherwise {
                    self.list(otherwise, dot, dollar)?;
                }
                Ok(())
            }
            Node::Template { name, pipe, pos } => {
                if !self.tree.defines.contains_key(name) {
                    return Err(self.error(*pos, format!("no template {} is defined", shown(name))));
                }
                match pipe {
                    Some(pipe) => self.pipeline(pipe, dot, dollar),
                    None => Ok(()),
                }
            }
        }
    }

    fn pipeline(&self, pipe: &Pipeline, dot: Dot, dollar: Dot) -> Result<(), String> {
        for (i, command) in pipe.commands.iter().enumerate() {
            self.command(command, i > 0, dot, dollar)?;
        }
        Ok(())
    }

    fn command(&self, command: &Command, piped: bool, dot: Dot, dollar: Dot) -> Result<(), String> {
        let (first, rest) = command
            .args
            .split_first()
            .ok_or_else(|| self.error(command.pos, "empty command".to_owned()))?;
        match first {
            Arg::Func(name) => {
                let given = rest.len() + usize::from(piped);
                self.function(name, given, command.pos)?;
                self.literal_references(name, rest, piped, command.pos, dot, dollar)?;
            }
            Arg::Nil => return Err(self.error(command.pos, "nil is not a command".to_owned())),
            _ if !rest.is_empty() || piped => {
                return Err(self.error(
                    command.pos,
                    "only a function can be given arguments or piped into".to_owned(),
                ));
            }
            _ => {}
        }
        let operands = if matches!(first, Arg::Func(_)) {
            rest
        } else {
            &command.args[..]
        };
        for arg in operands {
            self.arg(arg, command.pos, dot, dollar)?;
        }
        Ok(())
    }

    fn function(&self, name: &str, given: usize, pos: usize) -> Result<(), String> {
        let (min, max) = arity(name)
            .ok_or_else(|| self.error(pos, format!("function {} not defined", shown(name))))?;
        if given < min || max.is_some_and(|max| given > max) {
            let expected = match max {
                Some(max) if max == min => format!("{min}"),
                Some(max) => format!("{min} to {max}"),
                None => format!("at least {min}"),
            };
            return Err(self.error(
                pos,
                format!("{} takes {expected} arguments, given {given}", shown(name)),
            ));
        }
        Ok(())
    }

    /// Keys named by `index . "key"` and `printf` formats written in the template.
    fn literal_references(
        &self,
        name: &str,
        args: &[Arg],
        piped: bool,
        pos: usize,
        dot: Dot,
        dollar: Dot,
    ) -> Result<(), String> {
        match (name, args) {
            ("index", [map, Arg::Str(key), ..]) if self.is_root(map, dot, dollar) => {
                let key = String::from_utf8_lossy(key);
                if !self.data.contains_key(key.as_ref()) {
                    return Err(
                        self.error(pos, format!("no key {} in the decrypted data", shown(&key)))
                    );
                }
            }
            ("printf", [Arg::Str(text), rest @ ..]) => {
                let pieces = format::parse(text)
                    .map_err(|e| self.error(pos, format!("printf format: {e}")))?;
                let wanted = format::arguments(&pieces);
                let given = rest.len() + usize::from(piped);
                if given != wanted {
                    return Err(self.error(
                        pos,
                        format!("printf format takes {wanted} arguments, given {given}"),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn is_root(&self, arg: &Arg, dot: Dot, dollar: Dot) -> bool {
        match arg {
            Arg::Dot => dot == Dot::Root,
            Arg::Variable(name, fields) => name == "$" && fields.is_empty() && dollar == Dot::Root,
            _ => false,
        }
    }

    fn arg(&self, arg: &Arg, pos: usize, dot: Dot, dollar: Dot) -> Result<(), String> {
        match arg {
            Arg::Field(fields) if dot == Dot::Root => self.fields(fields, pos),
            Arg::Variable(name, fields)
                if name == "$" && dollar == Dot::Root && !fields.is_empty() =>
            {
                self.fields(fields, pos)
            }
            Arg::Pipe(pipe, _) => self.pipeline(pipe, dot, dollar),
            Arg::Func(name) => self.function(name, 0, pos),
            _ => Ok(()),
        }
    }

    /// `.key.more` on the value map: the key must exist, and values (strings) have no fields.
    fn fields(&self, fields: &[String], pos: usize) -> Result<(), String> {
        let Some(key) = fields.first() else {
            return Ok(());
        };
        if !self.data.contains_key(key) {
            return Err(self.error(pos, format!("no key {} in the decrypted data", shown(key))));
        }
        if let Some(field) = fields.get(1) {
            return Err(self.error(
                pos,
                format!(
                    "key {} is a string: it has no field {}",
                    shown(key),
                    shown(field)
                ),
            ));
        }
        Ok(())
    }
}
