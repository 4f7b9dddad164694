mod common;

use common::*;
use schema_fence::error::{TopologyError, YamlError};
use schema_fence::{Error, Topology};

#[test]
fn gitlabs_database_connections_load() {
    let topology = Topology::load(&gitlab_fixtures().join("database_connections")).unwrap();
    assert_eq!(topology.names(), vec!["ci", "main"]);
    let ci = topology.database("ci").unwrap();
    assert_eq!(ci.fallback_database.as_deref(), Some("main"));
    assert!(ci.lock_gitlab_schemas.contains(&"gitlab_main".to_string()));
    assert_eq!(topology.served_with("main"), vec!["main", "ci"]);
    let allowed = topology.allowed_schemas(&["ci"]).unwrap();
    assert_eq!(
        allowed,
        vec![
            "gitlab_ci",
            "gitlab_ci_cell_local",
            "gitlab_internal",
            "gitlab_shared"
        ]
    );
    let both = topology.allowed_schemas(&["main", "ci"]).unwrap();
    assert!(both.contains(&"gitlab_main".to_string()) && both.contains(&"gitlab_ci".to_string()));
}

#[test]
fn an_unknown_database_name_is_an_error_listing_the_known_ones() {
    let topology = Topology::load(&gitlab_fixtures().join("database_connections")).unwrap();
    let err = topology.allowed_schemas(&["sec"]).unwrap_err();
    assert!(matches!(
        err,
        Error::Topology(TopologyError::UnknownDatabase { .. })
    ));
    assert!(err.to_string().contains("ci, main"), "{err}");
}

#[test]
fn a_fallback_to_an_unknown_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ci.yaml",
        "name: ci\ngitlab_schemas: [gitlab_ci]\nfallback_database: mian\n",
    );
    let err = Topology::load(dir.path()).unwrap_err();
    assert!(
        matches!(err, Error::Topology(TopologyError::Topology { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("mian"));
}

#[test]
fn a_connection_file_without_gitlab_schemas_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "main.yaml", "name: main\n");
    let err = Topology::load(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Yaml(YamlError::MissingKey {
                key: "gitlab_schemas",
                ..
            })
        ),
        "{err}"
    );
}

#[test]
fn a_cycle_of_fallbacks_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let connections = dir.path().join("database_connections");
    common::write(
        &connections,
        "main.yaml",
        "name: main\ngitlab_schemas: [gitlab_main]\nfallback_database: ci\n",
    );
    common::write(
        &connections,
        "ci.yaml",
        "name: ci\ngitlab_schemas: [gitlab_ci]\nfallback_database: main\n",
    );
    let err = schema_fence::Topology::load(&connections).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("form a cycle"), "{message}");
    assert!(
        message.contains("ci -> main -> ci") || message.contains("main -> ci -> main"),
        "{message}"
    );
}
