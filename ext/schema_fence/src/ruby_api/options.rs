//! Reading a Hash of options by name into a core option struct: each key converted once, a key
//! of the wrong type or one the method does not take refused with its name.

use magnus::{prelude::*, r_hash::ForEach, Error, RHash, Ruby, Symbol, TryConvert, Value};

use super::errors;

pub(crate) struct Options<'r> {
    ruby: &'r Ruby,
    hash: RHash,
    /// Whose options these are, for the messages (`Runner.new`).
    owner: &'static str,
    read: Vec<&'static str>,
}

impl<'r> Options<'r> {
    pub(crate) fn new(ruby: &'r Ruby, hash: RHash, owner: &'static str) -> Self {
        Options {
            ruby,
            hash,
            owner,
            read: Vec::new(),
        }
    }

    /// The value at `key` (a Symbol key), nil and absent both as None.
    pub(crate) fn get<T: TryConvert>(&mut self, key: &'static str) -> Result<Option<T>, Error> {
        self.read.push(key);
        let value: Option<Value> = self.hash.get(self.ruby.to_symbol(key));
        match value {
            None => Ok(None),
            Some(v) if v.is_nil() => Ok(None),
            Some(v) => T::try_convert(v).map(Some).map_err(|e| {
                errors::raise(
                    self.ruby,
                    "InvalidArgumentError",
                    format!("{}: option {key}: {e}", self.owner),
                )
            }),
        }
    }

    /// The value at `key`, which must be given.
    pub(crate) fn required<T: TryConvert>(&mut self, key: &'static str) -> Result<T, Error> {
        self.get(key)?.ok_or_else(|| {
            errors::raise(
                self.ruby,
                "InvalidArgumentError",
                format!("{}: option {key} is missing", self.owner),
            )
        })
    }

    /// The value at `key`, or `default` when absent.
    pub(crate) fn or<T: TryConvert>(&mut self, key: &'static str, default: T) -> Result<T, Error> {
        Ok(self.get(key)?.unwrap_or(default))
    }

    /// Refuses keys no `get` asked for: a misspelt option must not be ignored silently.
    pub(crate) fn finish(self) -> Result<(), Error> {
        let mut unknown = Vec::new();
        let read = &self.read;
        self.hash.foreach(|key: Value, _: Value| {
            let name = match Symbol::from_value(key) {
                Some(symbol) => symbol.name().map(|n| n.into_owned()).ok(),
                None => None,
            };
            match name {
                Some(name) if read.contains(&name.as_str()) => {}
                _ => unknown.push(key.inspect()),
            }
            Ok(ForEach::Continue)
        })?;
        if unknown.is_empty() {
            return Ok(());
        }
        Err(errors::raise(
            self.ruby,
            "InvalidArgumentError",
            format!(
                "{}: unknown option {} (it takes {})",
                self.owner,
                unknown.join(", "),
                self.read.join(", ")
            ),
        ))
    }
}
