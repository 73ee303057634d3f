//! Tokens into a tree, with Go's grammar and a bound on nesting.
//!
//! The parser recurses once per nested control structure or parenthesis; `max_nesting` bounds
//! that recursion (and so the tree's depth, which bounds the checker's and the evaluator's
//! recursion per template).

use std::collections::BTreeMap;

use super::budget::MAX_VARIABLES;
use super::lexer::{Kind, Token, lex};
use super::message::{position, shown};

/// A parsed template: the main body and the `define`d ones.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    pub(crate) root: List,
    pub(crate) defines: BTreeMap<String, List>,
}

pub(crate) type List = Vec<Node>;

#[derive(Debug)]
pub(crate) enum Node {
    Text(Vec<u8>),
    Action(Pipeline),
    If(Branch),
    With(Branch),
    Range(Branch),
    Template {
        name: String,
        pipe: Option<Pipeline>,
        pos: usize,
    },
    Break,
    Continue,
}

#[derive(Debug)]
pub(crate) struct Branch {
    pub(crate) pipe: Pipeline,
    pub(crate) list: List,
    pub(crate) otherwise: Option<List>,
}

#[derive(Debug)]
pub(crate) struct Pipeline {
    pub(crate) pos: usize,
    /// Variables declared (`:=`) or assigned (`=`) with the result.
    pub(crate) vars: Vec<String>,
    pub(crate) assign: bool,
    pub(crate) commands: Vec<Command>,
}

#[derive(Debug)]
pub(crate) struct Command {
    pub(crate) pos: usize,
    pub(crate) args: Vec<Arg>,
}

#[derive(Debug)]
pub(crate) enum Arg {
    Func(String),
    Dot,
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Vec<u8>),
    /// `.a.b`
    Field(Vec<String>),
    /// `$x.a.b`
    Variable(String, Vec<String>),
    /// `(pipeline).a.b`
    Pipe(Box<Pipeline>, Vec<String>),
}

pub(crate) fn parse(text: &str, max_nesting: usize) -> Result<Tree, String> {
    let tokens = lex(text)?;
    let mut parser = Parser {
        text,
        tokens,
        at: 0,
        max_nesting,
        vars: vec!["$".to_owned()],
        tree: Tree::default(),
    };
    let (root, end) = parser.list(0, false, true)?;
    match end {
        Stop::Eof => {}
        Stop::End(pos) => return Err(parser.error(pos, "unexpected {{end}}")),
        Stop::Else(pos) => return Err(parser.error(pos, "unexpected {{else}}")),
    }
    parser.tree.root = root;
    Ok(parser.tree)
}

/// What stopped a list.
enum Stop {
    Eof,
    End(usize),
    /// At `else`; the tokens after it are next.
    Else(usize),
}

struct Parser<'t> {
    text: &'t str,
    tokens: Vec<Token>,
    at: usize,
    max_nesting: usize,
    /// Variables in scope, for Go's "undefined variable" check.
    vars: Vec<String>,
    tree: Tree,
}

impl Parser<'_> {
    fn error(&self, pos: usize, message: &str) -> String {
        format!("{}: {message}", position(self.text, pos))
    }

    fn peek(&self) -> &Token {
        // The lexer always ends with Eof, and nothing moves past it.
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        if token.kind != Kind::Eof {
            self.at += 1;
        }
        token
    }

    fn expect(&mut self, kind: Kind, context: &str) -> Result<Token, String> {
        let token = self.next();
        if token.kind == kind {
            Ok(token)
        } else {
            Err(self.error(
                token.pos,
                &format!("unexpected {} in {context}", describe(&token.kind)),
            ))
        }
    }

    fn deeper(&self, depth: usize, pos: usize) -> Result<usize, String> {
        if depth >= self.max_nesting {
            Err(self.error(
                pos,
                &format!("nested more than {} levels deep", self.max_nesting),
            ))
        } else {
            Ok(depth + 1)
        }
    }

    /// Nodes up to `{{end}}`, `{{else}}` or the end of the text.
    fn list(&mut self, depth: usize, in_range: bool, top: bool) -> Result<(List, Stop), String> {
        let mut list = List::new();
        loop {
            let token = self.next();
            match token.kind {
                Kind::Eof => return Ok((list, Stop::Eof)),
                Kind::Text(text) => list.push(Node::Text(text.into_bytes())),
                Kind::Open => {
                    let word = self.peek().clone();
                    let keyword = match &word.kind {
                        Kind::Ident(name) => name.as_str(),
                        _ => "",
                    };
                    match keyword {
                        "end" => {
                            self.next();
                            self.expect(Kind::Close, "end")?;
                            return Ok((list, Stop::End(word.pos)));
                        }
                        "else" => {
                            self.next();
                            return Ok((list, Stop::Else(word.pos)));
                        }
                        "if" | "with" | "range" => {
                            self.next();
                            let depth = self.deeper(depth, word.pos)?;
                            list.push(self.branch(keyword, depth, in_range)?);
                        }
                        "define" => {
                            if !top {
                                return Err(
                                    self.error(word.pos, "define is allowed only at the top level")
                                );
                            }
                            self.next();
                            self.define(depth)?;
                        }
                        "block" => {
                            self.next();
                            list.push(self.block(depth)?);
                        }
                        "template" => {
                            self.next();
                            list.push(self.template(word.pos, depth)?);
                        }
                        "break" | "continue" => {
                            self.next();
                            if !in_range {
                                return Err(self.error(
                                    word.pos,
                                    &format!("{{{{{keyword}}}}} outside {{{{range}}}}"),
                                ));
                            }
                            self.expect(Kind::Close, keyword)?;
                            list.push(if keyword == "break" {
                                Node::Break
                            } else {
                                Node::Continue
                            });
                        }
                        _ => {
                            let pipe = self.pipeline("command", depth, true, false)?;
                            self.expect(Kind::Close, "command")?;
                            list.push(Node::Action(pipe));
                        }
                    }
                }
                other => {
                    return Err(self.error(token.pos, &format!("unexpected {}", describe(&other))));
                }
            }
        }
    }

    /// `if`, `with` or `range`, after the keyword, through its `{{end}}`.
    fn branch(&mut self, keyword: &str, depth: usize, in_range: bool) -> Result<Node, String> {
        let mark = self.vars.len();
        let pipe = self.pipeline(keyword, depth, true, keyword == "range")?;
        self.expect(Kind::Close, keyword)?;
        let body_in_range = in_range || keyword == "range";
        let (list, end) = self.list(depth, body_in_range, false)?;
        let otherwise = match end {
            Stop::Eof => {
                return Err(self.error(
                    pipe.pos,
                    &format!("unexpected EOF: {{{{{keyword}}}}} has no {{{{end}}}}"),
                ));
            }
            Stop::End(_) => None,
            Stop::Else(_) => {
                let chained = match &self.peek().kind {
                    Kind::Ident(name) if (name == "if" || name == "with") && name == keyword => {
                        Some(name.clone())
                    }
                    _ => None,
                };
                if let Some(chained) = chained {
                    // `{{else if …}}`: a nested branch that shares this one's `{{end}}`.
                    let word = self.next();
                    let depth = self.deeper(depth, word.pos)?;
                    Some(vec![self.branch(&chained, depth, in_range)?])
                } else {
                    self.expect(Kind::Close, "else")?;
                    let (otherwise, end) = self.list(depth, in_range, false)?;
                    match end {
                        Stop::End(_) => Some(otherwise),
                        Stop::Else(pos) => {
                            return Err(
                                self.error(pos, "expected {{end}}, found a second {{else}}")
                            );
                        }
                        Stop::Eof => {
                            return Err(self.error(
                                pipe.pos,
                                &format!("unexpected EOF: {{{{{keyword}}}}} has no {{{{end}}}}"),
                            ));
                        }
                    }
                }
            }
        };
        self.vars.truncate(mark);
        let branch = Branch {
            pipe,
            list,
            otherwise,
        };
        Ok(match keyword {
            "if" => Node::If(branch),
            "with" => Node::With(branch),
            _ => Node::Range(branch),
        })
    }

    fn template_name(&mut self, context: &str) -> Result<String, String> {
        let token = self.next();
        match token.kind {
            Kind::Str(name) => String::from_utf8(name)
                .map_err(|_| self.error(token.pos, "template names must be UTF-8")),
            other => Err(self.error(
                token.pos,
                &format!(
                    "unexpected {} in {context}: expected a quoted name",
                    describe(&other)
                ),
            )),
        }
    }

    /// `{{template "name" pipeline}}`, after the keyword.
    fn template(&mut self, pos: usize, depth: usize) -> Result<Node, String> {
        let name = self.template_name("template")?;
        let pipe = if self.peek().kind == Kind::Close {
            None
        } else {
            Some(self.pipeline("template", depth, false, false)?)
        };
        self.expect(Kind::Close, "template")?;
        Ok(Node::Template { name, pipe, pos })
    }

    /// `{{define "name"}}…{{end}}`, after the keyword.
    fn define(&mut self, depth: usize) -> Result<(), String> {
        let pos = self.peek().pos;
        let name = self.template_name("define")?;
        self.expect(Kind::Close, "define")?;
        let outer = std::mem::replace(&mut self.vars, vec!["$".to_owned()]);
        let depth = self.deeper(depth, pos)?;
        let (body, end) = self.list(depth, false, false)?;
        self.vars = outer;
        if !matches!(end, Stop::End(_)) {
            return Err(self.error(
                pos,
                &format!("{{{{define {}}}}} has no {{{{end}}}}", shown(&name)),
            ));
        }
        if self.tree.defines.insert(name.clone(), body).is_some() {
            return Err(self.error(pos, &format!("template {} defined twice", shown(&name))));
        }
        Ok(())
    }

    /// `{{block "name" pipeline}}…{{end}}`: defines the template and calls it here.
    fn block(&mut self, depth: usize) -> Result<Node, String> {
        let pos = self.peek().pos;
        let name = self.template_name("block")?;
        let pipe = if self.peek().kind == Kind::Close {
            None
        } else {
            Some(self.pipeline("block", depth, false, false)?)
        };
        self.expect(Kind::Close, "block")?;
        let outer = std::mem::replace(&mut self.vars, vec!["$".to_owned()]);
        let inner = self.deeper(depth, pos)?;
        let (body, end) = self.list(inner, false, false)?;
        self.vars = outer;
        if !matches!(end, Stop::End(_)) {
            return Err(self.error(
                pos,
                &format!("{{{{block {}}}}} has no {{{{end}}}}", shown(&name)),
            ));
        }
        if self.tree.defines.insert(name.clone(), body).is_some() {
            return Err(self.error(pos, &format!("template {} defined twice", shown(&name))));
        }
        Ok(Node::Template { name, pipe, pos })
    }

    /// Declarations, then commands separated by `|`, up to `}}` or `)` (not consumed).
    fn pipeline(
        &mut self,
        context: &str,
        depth: usize,
        may_declare: bool,
        range: bool,
    ) -> Result<Pipeline, String> {
        let pos = self.peek().pos;
        let mut vars = Vec::new();
        let mut assign = false;
        if let Some((names, is_assign)) = may_declare.then(|| self.declaration(range)).flatten() {
            for name in &names {
                if is_assign && !self.vars.contains(name) {
                    return Err(self.error(pos, &format!("undefined variable {}", shown(name))));
                }
            }
            vars = names;
            assign = is_assign;
        }
        let mut commands = Vec::new();
        loop {
            commands.push(self.command(context, depth)?);
            if self.peek().kind == Kind::Pipe {
                self.next();
            } else {
                break;
            }
        }
        // Declared names come into scope after the pipeline that sets them.
        if !assign {
            if self.vars.len() + vars.len() > MAX_VARIABLES {
                return Err(self.error(
                    pos,
                    &format!("more than {MAX_VARIABLES} variables in scope"),
                ));
            }
            self.vars.extend(vars.iter().cloned());
        }
        Ok(Pipeline {
            pos,
            vars,
            assign,
            commands,
        })
    }

    /// `$x :=`, `$x =` or (in range) `$k, $v :=`, consumed if present.
    fn declaration(&mut self, range: bool) -> Option<(Vec<String>, bool)> {
        let kinds: Vec<&Kind> = self.tokens[self.at..]
            .iter()
            .take(4)
            .map(|t| &t.kind)
            .collect();
        match kinds.as_slice() {
            [Kind::Variable(a), Kind::Declare | Kind::Assign, ..] => {
                let assign = *kinds[1] == Kind::Assign;
                let names = vec![a.clone()];
                self.at += 2;
                Some((names, assign))
            }
            [
                Kind::Variable(a),
                Kind::Comma,
                Kind::Variable(b),
                Kind::Declare | Kind::Assign,
            ] if range => {
                let assign = *kinds[3] == Kind::Assign;
                let names = vec![a.clone(), b.clone()];
                self.at += 4;
                Some((names, assign))
            }
            _ => None,
        }
    }

    fn command(&mut self, context: &str, depth: usize) -> Result<Command, String> {
        let pos = self.peek().pos;
        let mut args = Vec::new();
        loop {
            match self.peek().kind {
                Kind::Close | Kind::RParen | Kind::Pipe | Kind::Eof => break,
                _ => args.push(self.operand(context, depth)?),
            }
        }
        if args.is_empty() {
            return Err(self.error(pos, &format!("missing value for {context}")));
        }
        Ok(Command { pos, args })
    }

    fn operand(&mut self, context: &str, depth: usize) -> Result<Arg, String> {
        let token = self.next();
        let arg = match token.kind {
            Kind::Ident(name) => match name.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil,
                _ => Arg::Func(name),
            },
            Kind::Dot => Arg::Dot,
            Kind::Field(name) => Arg::Field(self.chain(vec![name])),
            Kind::Variable(name) => {
                if !self.vars.contains(&name) {
                    return Err(
                        self.error(token.pos, &format!("undefined variable {}", shown(&name)))
                    );
                }
                Arg::Variable(name, self.chain(Vec::new()))
            }
            Kind::Str(s) => Arg::Str(s),
            Kind::Int(i) => Arg::Int(i),
            Kind::Float(f) => Arg::Float(f),
            Kind::LParen => {
                let depth = self.deeper(depth, token.pos)?;
                let pipe = self.pipeline("parenthesized pipeline", depth, false, false)?;
                self.expect(Kind::RParen, "parenthesized pipeline")?;
                Arg::Pipe(Box::new(pipe), self.chain(Vec::new()))
            }
            other => {
                return Err(self.error(
                    token.pos,
                    &format!("unexpected {} in {context}", describe(&other)),
                ));
            }
        };
        if matches!(self.peek().kind, Kind::Field(_)) && !self.peek().spaced {
            return Err(self.error(self.peek().pos, "unexpected field after this operand"));
        }
        Ok(arg)
    }

    /// Fields written right after a term: `.a.b`.
    fn chain(&mut self, mut fields: Vec<String>) -> Vec<String> {
        while let Kind::Field(name) = &self.peek().kind {
            if self.peek().spaced {
                break;
            }
            fields.push(name.clone());
            self.next();
        }
        fields
    }
}

fn describe(kind: &Kind) -> String {
    match kind {
        Kind::Text(_) => "text".to_owned(),
        Kind::Open => "{{".to_owned(),
        Kind::Close => "}}".to_owned(),
        Kind::Ident(name) => format!("word {}", shown(name)),
        Kind::Field(name) => format!("field .{}", shown(name)),
        Kind::Dot => "\".\"".to_owned(),
        Kind::Variable(name) => format!("variable {}", shown(name)),
        Kind::Str(_) => "string".to_owned(),
        Kind::Int(_) | Kind::Float(_) => "number".to_owned(),
        Kind::LParen => "\"(\"".to_owned(),
        Kind::RParen => "\")\"".to_owned(),
        Kind::Pipe => "\"|\"".to_owned(),
        Kind::Declare => "\":=\"".to_owned(),
        Kind::Assign => "\"=\"".to_owned(),
        Kind::Comma => "\",\"".to_owned(),
        Kind::Eof => "end of template".to_owned(),
    }
}
