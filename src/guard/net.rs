//! The safety net under the walk: every `RangeVar` anywhere in a parse tree, found through the
//! tree's derived `serde::Serialize`, which visits every field of every node kind PostgreSQL
//! has. The walk places relations by meaning; this finds the ones a node kind it does not know
//! hides, so that they are checked too (as reads).

use std::fmt;

use pg_query::protobuf::ParseResult;
use serde::ser::{self, Serialize};

/// One `RangeVar` of the tree.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub location: i32,
    pub schemaname: String,
    pub relname: String,
}

impl Found {
    pub fn name(&self) -> String {
        if self.schemaname.is_empty() {
            self.relname.clone()
        } else {
            format!("{}.{}", self.schemaname, self.relname)
        }
    }
}

pub(crate) fn relations(result: &ParseResult) -> Vec<Found> {
    let mut sink = Sink::default();
    // The sink has no error path: serializing into it cannot fail.
    let _ = result.serialize(&mut sink);
    sink.found
}

#[derive(Default)]
struct Sink {
    found: Vec<Found>,
    /// Set while a `RangeVar`'s own string or integer field is serialized.
    capture: bool,
    text: String,
    int: i32,
}

#[derive(Debug)]
pub(crate) struct Never;

impl fmt::Display for Never {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unreachable")
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Never
    }
}

macro_rules! ignore {
    ($($name:ident: $ty:ty),* $(,)?) => {
        $(fn $name(self, _: $ty) -> Result<(), Never> { Ok(()) })*
    };
}

impl<'a> ser::Serializer for &'a mut Sink {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Struct<'a>;
    type SerializeStructVariant = Self;

    ignore!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64,
        serialize_f32: f32, serialize_f64: f64, serialize_char: char, serialize_bytes: &[u8],
        serialize_unit_struct: &'static str,
    );

    fn serialize_i32(self, v: i32) -> Result<(), Never> {
        if self.capture {
            self.int = v;
        }
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), Never> {
        if self.capture {
            self.text.clear();
            self.text.push_str(v);
        }
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Never> {
        Ok(())
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Never> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Never> {
        Ok(())
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Never> {
        Ok(())
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Struct<'a>, Never> {
        let range_var = (name == "RangeVar").then(Found::default);
        Ok(Struct {
            sink: self,
            range_var,
        })
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Never> {
        Ok(self)
    }
}

pub(crate) struct Struct<'a> {
    sink: &'a mut Sink,
    range_var: Option<Found>,
}

impl ser::SerializeStruct for Struct<'_> {
    type Ok = ();
    type Error = Never;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        let Some(found) = &mut self.range_var else {
            return value.serialize(&mut *self.sink);
        };
        if !matches!(key, "schemaname" | "relname" | "location") {
            return value.serialize(&mut *self.sink);
        }
        self.sink.capture = true;
        let result = value.serialize(&mut *self.sink);
        self.sink.capture = false;
        match key {
            "schemaname" => found.schemaname = std::mem::take(&mut self.sink.text),
            "relname" => found.relname = std::mem::take(&mut self.sink.text),
            _ => found.location = self.sink.int,
        }
        result
    }

    fn end(self) -> Result<(), Never> {
        if let Some(found) = self.range_var {
            self.sink.found.push(found);
        }
        Ok(())
    }
}

macro_rules! forward {
    ($($trait:ident :: $method:ident),* $(,)?) => {
        $(impl ser::$trait for &mut Sink {
            type Ok = ();
            type Error = Never;

            fn $method<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Never> {
                value.serialize(&mut **self)
            }

            fn end(self) -> Result<(), Never> {
                Ok(())
            }
        })*
    };
}

forward!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl ser::SerializeMap for &mut Sink {
    type Ok = ();
    type Error = Never;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Never> {
        key.serialize(&mut **self)
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Never> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), Never> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut Sink {
    type Ok = ();
    type Error = Never;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), Never> {
        Ok(())
    }
}
