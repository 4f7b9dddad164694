//! Core errors become instances of the Ruby class of the same name plus `Error`
//! (`lib/schema_fence/errors.rb`, which owns the hierarchy). The classes are resolved once, when
//! the extension loads: a core error without its Ruby class fails the load, never a raise.

use std::collections::HashMap;
use std::sync::OnceLock;

use magnus::{prelude::*, value::Opaque, Error, ExceptionClass, RModule, Ruby, Value};

/// Classes the binding raises itself, besides one per core error kind.
const BINDING_CLASSES: &[&str] = &["Error", "InvalidJobArgumentsError"];

static CLASSES: OnceLock<HashMap<String, Opaque<ExceptionClass>>> = OnceLock::new();

/// Resolves `SchemaFence::<kind>Error` for every core error kind, and the binding's own classes.
pub(crate) fn init(ruby: &Ruby, module: &RModule) -> Result<(), Error> {
    let names = schema_fence::Error::kinds()
        .map(|kind| format!("{kind}Error"))
        .chain(BINDING_CLASSES.iter().map(|name| name.to_string()));
    let mut classes = HashMap::new();
    for name in names {
        let class = module
            .const_get::<_, ExceptionClass>(name.as_str())
            .map_err(|_| {
                Error::new(
                    ruby.exception_load_error(),
                    format!(
                        "schema_fence: the native core raises SchemaFence::{name}, which \
                     lib/schema_fence/errors.rb does not define; require \"schema_fence\" \
                     (it loads errors.rb first), or define the class"
                    ),
                )
            })?;
        classes.insert(name, Opaque::from(class));
    }
    // A second load of the extension finds the table made by the first: the same constants.
    let _ = CLASSES.set(classes);
    let kinds = ruby.ary_new();
    for kind in schema_fence::Error::kinds() {
        kinds.push(kind)?;
    }
    kinds.freeze();
    module.const_set("ERROR_KINDS", kinds)?;
    Ok(())
}

fn class(ruby: &Ruby, name: &str) -> ExceptionClass {
    CLASSES
        .get()
        .and_then(|classes| classes.get(name))
        .map(|class| ruby.get_inner(*class))
        // Unreachable once init has run; before it, StandardError keeps the message.
        .unwrap_or_else(|| ruby.exception_standard_error())
}

/// The core error as its Ruby exception, with the fields a rescuer branches on (`sqlstate`,
/// `table`, `gitlab_schema`, `database`) besides the message.
pub(crate) fn to_ruby(ruby: &Ruby, err: schema_fence::Error) -> Error {
    let class = class(ruby, &format!("{}Error", err.kind()));
    let fields = [
        ("@sqlstate", err.sqlstate()),
        ("@table", err.table()),
        ("@gitlab_schema", err.gitlab_schema()),
        ("@database", err.database()),
    ];
    let exception = match class.new_instance((err.to_string(),)) {
        Ok(exception) => exception,
        Err(e) => return e,
    };
    for (name, value) in fields {
        if let Some(value) = value {
            let set: Result<Value, Error> =
                exception.funcall("instance_variable_set", (name, value));
            if let Err(e) = set {
                return e;
            }
        }
    }
    Error::from(exception)
}

/// Raises `SchemaFence::<class_name>` (one of the classes resolved at load).
pub(crate) fn raise(ruby: &Ruby, class_name: &str, message: String) -> Error {
    Error::new(class(ruby, class_name), message)
}
