//! devlink "formatted messages" (fmsg): the diagnose and dump payloads of health reporters.
//!
//! The kernel sends an fmsg as a flat run of attributes inside `DEVLINK_ATTR_FMSG`: nest
//! markers (`OBJ_NEST_START`, `PAIR_NEST_START`, `ARR_NEST_START`, `NEST_END`, all flags), names
//! (`OBJ_NAME`) and typed values (`OBJ_VALUE_TYPE` then `OBJ_VALUE_DATA`); a long fmsg is split
//! over several messages, each with its own `DEVLINK_ATTR_FMSG` (net/devlink/health.c
//! `devlink_fmsg_prepare_skb`). [`Fmsg::parse`] rebuilds the tree; [`FmsgBuilder`] writes one
//! the way the kernel does, for fixtures and the simulated host.

use std::collections::BTreeMap;

use thiserror::Error;

use super::wire::{Attr, WireError};

/// `DEVLINK_ATTR_FMSG_OBJ_NEST_START`.
pub const OBJ_NEST_START: u16 = 107;
/// `DEVLINK_ATTR_FMSG_PAIR_NEST_START`.
pub const PAIR_NEST_START: u16 = 108;
/// `DEVLINK_ATTR_FMSG_ARR_NEST_START`.
pub const ARR_NEST_START: u16 = 109;
/// `DEVLINK_ATTR_FMSG_NEST_END`.
pub const NEST_END: u16 = 110;
/// `DEVLINK_ATTR_FMSG_OBJ_NAME`.
pub const OBJ_NAME: u16 = 111;
/// `DEVLINK_ATTR_FMSG_OBJ_VALUE_TYPE`.
pub const OBJ_VALUE_TYPE: u16 = 112;
/// `DEVLINK_ATTR_FMSG_OBJ_VALUE_DATA`.
pub const OBJ_VALUE_DATA: u16 = 113;

// The value types: the NLA_* numbers (DEVLINK_VAR_ATTR_TYPE_* since 6.13, same values).
const TYPE_U8: u8 = 1;
const TYPE_U16: u8 = 2;
const TYPE_U32: u8 = 3;
const TYPE_U64: u8 = 4;
const TYPE_STRING: u8 = 5;
const TYPE_FLAG: u8 = 6;
const TYPE_NUL_STRING: u8 = 10;
const TYPE_BINARY: u8 = 11;

/// Nests deeper than this are refused: no reporter nests more than a few levels, and the
/// parser recurses.
const MAX_DEPTH: usize = 32;

/// An fmsg that does not follow the kernel's grammar.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FmsgError {
    /// The attributes themselves are malformed.
    #[error("fmsg attributes")]
    Wire(#[from] WireError),
    /// A nest marker, name or value where the grammar has none.
    #[error("fmsg item {index}: {what}")]
    Unexpected {
        /// The item's position.
        index: usize,
        /// What was wrong.
        what: &'static str,
    },
    /// A value type the kernel does not send.
    #[error("fmsg value type {0} unknown")]
    UnknownType(u8),
    /// Nests deeper than the parser follows.
    #[error("fmsg nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// One value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A flag (sent as a `u8`).
    Bool(bool),
    /// An unsigned number (`u8`, `u16`, `u32` or `u64` on the wire).
    Uint(u64),
    /// Text.
    Str(String),
    /// Binary data.
    Bytes(Vec<u8>),
}

impl Value {
    /// The number, for unsigned values.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Uint(n) => Some(*n),
            Value::Bool(b) => Some(u64::from(*b)),
            _ => None,
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Uint(n) => write!(f, "{n}"),
            Value::Str(s) => f.write_str(s),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
        }
    }
}

/// A node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// An object: named members (pairs) and anonymous nested objects (name `None`).
    Object(Vec<(Option<String>, Node)>),
    /// An array.
    Array(Vec<Node>),
    /// A value.
    Value(Value),
}

/// One flat item, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Obj,
    Pair,
    Arr,
    End,
    Name(String),
    Value(Value),
}

/// A whole fmsg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmsg {
    /// The outermost object.
    pub root: Node,
}

fn value(ty: u8, a: &Attr<'_>) -> Result<Value, FmsgError> {
    const N: &str = "DEVLINK_ATTR_FMSG_OBJ_VALUE_DATA";
    Ok(match ty {
        TYPE_FLAG => Value::Bool(a.u8(N)? != 0),
        TYPE_U8 => Value::Uint(u64::from(a.u8(N)?)),
        TYPE_U16 => Value::Uint(u64::from(a.u16(N)?)),
        TYPE_U32 => Value::Uint(u64::from(a.u32(N)?)),
        TYPE_U64 => Value::Uint(a.u64(N)?),
        TYPE_STRING | TYPE_NUL_STRING => Value::Str(a.str(N)?.to_owned()),
        TYPE_BINARY => Value::Bytes(a.data.to_vec()),
        t => return Err(FmsgError::UnknownType(t)),
    })
}

fn items(attrs: &[Attr<'_>]) -> Result<Vec<Item>, FmsgError> {
    let mut out = Vec::with_capacity(attrs.len());
    let mut ty = None;
    for (index, a) in attrs.iter().enumerate() {
        let item = match a.kind {
            OBJ_NEST_START => Item::Obj,
            PAIR_NEST_START => Item::Pair,
            ARR_NEST_START => Item::Arr,
            NEST_END => Item::End,
            OBJ_NAME => Item::Name(a.str("DEVLINK_ATTR_FMSG_OBJ_NAME")?.to_owned()),
            OBJ_VALUE_TYPE => {
                ty = Some(a.u8("DEVLINK_ATTR_FMSG_OBJ_VALUE_TYPE")?);
                continue;
            }
            OBJ_VALUE_DATA => {
                let t = ty.take().ok_or(FmsgError::Unexpected {
                    index,
                    what: "a value without its type",
                })?;
                Item::Value(value(t, a)?)
            }
            _ => continue,
        };
        out.push(item);
    }
    Ok(out)
}

struct Reader<'i> {
    items: &'i [Item],
    at: usize,
}

impl Reader<'_> {
    fn next(&mut self) -> Option<&Item> {
        let i = self.items.get(self.at);
        self.at += 1;
        i
    }

    fn peek(&self) -> Option<&Item> {
        self.items.get(self.at)
    }

    fn err(&self, what: &'static str) -> FmsgError {
        FmsgError::Unexpected {
            index: self.at.saturating_sub(1),
            what,
        }
    }

    /// After `OBJ_NEST_START`: members up to the matching `NEST_END`.
    fn object(&mut self, depth: usize) -> Result<Node, FmsgError> {
        if depth > MAX_DEPTH {
            return Err(FmsgError::TooDeep);
        }
        let mut members = Vec::new();
        loop {
            match self.next().cloned() {
                Some(Item::End) => return Ok(Node::Object(members)),
                Some(Item::Pair) => {
                    let Some(Item::Name(name)) = self.next().cloned() else {
                        return Err(self.err("a pair without its name"));
                    };
                    let v = self.pair_value(depth + 1)?;
                    members.push((Some(name), v));
                }
                Some(Item::Obj) => members.push((None, self.object(depth + 1)?)),
                Some(_) => return Err(self.err("a value or name outside a pair")),
                None => return Err(self.err("an object not closed")),
            }
        }
    }

    /// After a pair's name: its value (a value, an object or an array), then `NEST_END`.
    fn pair_value(&mut self, depth: usize) -> Result<Node, FmsgError> {
        if depth > MAX_DEPTH {
            return Err(FmsgError::TooDeep);
        }
        let v = match self.next().cloned() {
            Some(Item::Value(v)) => Node::Value(v),
            Some(Item::Obj) => self.object(depth + 1)?,
            Some(Item::Arr) => self.array(depth + 1)?,
            _ => return Err(self.err("a pair without its value")),
        };
        match self.next() {
            Some(Item::End) => Ok(v),
            _ => Err(self.err("a pair not closed")),
        }
    }

    /// After `ARR_NEST_START`: elements up to `NEST_END`.
    fn array(&mut self, depth: usize) -> Result<Node, FmsgError> {
        if depth > MAX_DEPTH {
            return Err(FmsgError::TooDeep);
        }
        let mut elems = Vec::new();
        loop {
            match self.next().cloned() {
                Some(Item::End) => return Ok(Node::Array(elems)),
                Some(Item::Value(v)) => elems.push(Node::Value(v)),
                Some(Item::Obj) => elems.push(self.object(depth + 1)?),
                Some(Item::Arr) => elems.push(self.array(depth + 1)?),
                _ => return Err(self.err("a name or pair inside an array")),
            }
        }
    }
}

impl Fmsg {
    /// Rebuilds the tree from the items of every `DEVLINK_ATTR_FMSG` of an answer, in order.
    pub fn parse(attrs: &[Attr<'_>]) -> Result<Fmsg, FmsgError> {
        let items = items(attrs)?;
        let mut r = Reader {
            items: &items,
            at: 0,
        };
        let root = match r.next() {
            Some(Item::Obj) => r.object(0)?,
            None => Node::Object(Vec::new()),
            Some(_) => return Err(r.err("an fmsg that does not open with an object")),
        };
        if r.peek().is_some() {
            return Err(r.err("items after the outermost object"));
        }
        Ok(Fmsg { root })
    }

    /// Every named value, depth first, with the name of its pair (array elements take their
    /// array's name).
    pub fn pairs(&self) -> Vec<(&str, &Value)> {
        fn walk<'a>(n: &'a Node, name: Option<&'a str>, out: &mut Vec<(&'a str, &'a Value)>) {
            match n {
                Node::Object(m) => m.iter().for_each(|(k, v)| walk(v, k.as_deref(), out)),
                Node::Array(e) => e.iter().for_each(|v| walk(v, name, out)),
                Node::Value(v) => {
                    if let Some(k) = name {
                        out.push((k, v));
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, None, &mut out);
        out
    }

    /// The first value named `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.pairs()
            .into_iter()
            .find(|(k, _)| *k == name)
            .map(|p| p.1)
    }

    /// Every unsigned value by name (the last wins): counters.
    pub fn numbers(&self) -> BTreeMap<String, u64> {
        self.pairs()
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v.as_u64()?)))
            .collect()
    }
}

/// Writes an fmsg's items the way the kernel's `devlink_fmsg_*_put` calls do, as attributes
/// (kind, payload) to place inside `DEVLINK_ATTR_FMSG`.
#[derive(Debug, Clone, Default)]
pub struct FmsgBuilder {
    /// The attributes so far.
    pub attrs: Vec<(u16, Vec<u8>)>,
}

impl FmsgBuilder {
    /// `devlink_fmsg_obj_nest_start`.
    pub fn obj_start(mut self) -> Self {
        self.attrs.push((OBJ_NEST_START, Vec::new()));
        self
    }

    /// `devlink_fmsg_obj_nest_end` (and every other nest end).
    pub fn end(mut self) -> Self {
        self.attrs.push((NEST_END, Vec::new()));
        self
    }

    /// `devlink_fmsg_pair_nest_start`.
    pub fn pair_start(mut self, name: &str) -> Self {
        self.attrs.push((PAIR_NEST_START, Vec::new()));
        self.name(name)
    }

    /// `devlink_fmsg_arr_pair_nest_start`.
    pub fn arr_start(self, name: &str) -> Self {
        let mut s = self.pair_start(name);
        s.attrs.push((ARR_NEST_START, Vec::new()));
        s
    }

    fn name(mut self, name: &str) -> Self {
        let mut d = name.as_bytes().to_vec();
        d.push(0);
        self.attrs.push((OBJ_NAME, d));
        self
    }

    fn value(mut self, ty: u8, data: Vec<u8>) -> Self {
        self.attrs.push((OBJ_VALUE_TYPE, vec![ty]));
        self.attrs.push((OBJ_VALUE_DATA, data));
        self
    }

    /// `devlink_fmsg_u8_pair_put`.
    pub fn u8(self, name: &str, v: u8) -> Self {
        self.pair_start(name).value(TYPE_U8, vec![v]).end()
    }

    /// `devlink_fmsg_u32_pair_put`.
    pub fn u32(self, name: &str, v: u32) -> Self {
        self.pair_start(name)
            .value(TYPE_U32, v.to_ne_bytes().to_vec())
            .end()
    }

    /// `devlink_fmsg_u64_pair_put`.
    pub fn u64(self, name: &str, v: u64) -> Self {
        self.pair_start(name)
            .value(TYPE_U64, v.to_ne_bytes().to_vec())
            .end()
    }

    /// `devlink_fmsg_string_pair_put`.
    pub fn str(self, name: &str, v: &str) -> Self {
        let mut d = v.as_bytes().to_vec();
        d.push(0);
        self.pair_start(name).value(TYPE_NUL_STRING, d).end()
    }
}
