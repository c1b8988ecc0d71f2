//! `[[pool]]`: backends defined once, by name, and used by any handler that reaches backends
//! (`forward`, `passthrough`, `proxy`) with `pool = "NAME"` in place of `backend`/`backends`
//! (nginx's `upstream` block, HAProxy's `backend`). A pool's keys are copied into each handler
//! that names it before the handler is validated, so every rule and message of the inline form
//! applies; each server or route still runs the pool's backends with health of its own.

use std::collections::BTreeMap;

use super::error::Problems;
use super::value::{server_label, server_name};

/// The keys a `[[pool]]` may hold besides `name`: what says which backends and how to reach
/// them, not what a handler does with a connection.
const POOL_KEYS: [&str; 7] = [
    "backend",
    "backends",
    "balance",
    "health_check",
    "connect_timeout",
    "backend_tls",
    "idle_timeout",
];

/// The `[[pool]]` tables by name; every problem reported.
pub(super) fn pool_tables(
    value: toml::Value,
    problems: &mut Problems,
) -> BTreeMap<String, toml::Table> {
    let mut pools = BTreeMap::new();
    let toml::Value::Array(entries) = value else {
        problems.global("pool", "must be an array of tables: write [[pool]]");
        return pools;
    };
    for (i, entry) in entries.into_iter().enumerate() {
        let key = |k: &str| format!("pool[{i}].{k}");
        let toml::Value::Table(mut table) = entry else {
            problems.global(&format!("pool[{i}]"), "must be a table");
            continue;
        };
        let name = match table.remove("name") {
            Some(toml::Value::String(name)) if !name.is_empty() => name,
            _ => {
                problems.global(&key("name"), "every [[pool]] needs a name = \"…\"");
                continue;
            }
        };
        let mut ok = true;
        for unknown in table.keys().filter(|k| !POOL_KEYS.contains(&k.as_str())) {
            problems.global(
                &key(unknown),
                format!(
                    "unknown key in [[pool]] {name:?} (expected one of {})",
                    POOL_KEYS.join(", ")
                ),
            );
            ok = false;
        }
        if pools.contains_key(&name) {
            problems.global(&key("name"), format!("a second [[pool]] named {name:?}"));
            ok = false;
        }
        if ok {
            pools.insert(name, table);
        }
    }
    pools
}

/// Replaces `pool = "NAME"` in the server's handler and its routes' handlers with that pool's
/// keys. `index`: the server's place in the file, for its label.
pub(super) fn resolve_pools(
    server: &mut toml::Table,
    index: usize,
    pools: &BTreeMap<String, toml::Table>,
    problems: &mut Problems,
) {
    let label = server_label(server_name(server), index);
    if let Some(toml::Value::Table(handler)) = server.get_mut("handler") {
        resolve(handler, "handler", &label, pools, problems);
    }
    if let Some(toml::Value::Array(routes)) = server.get_mut("route") {
        for (i, route) in routes.iter_mut().enumerate() {
            if let Some(toml::Value::Table(handler)) =
                route.as_table_mut().and_then(|r| r.get_mut("handler"))
            {
                resolve(
                    handler,
                    &format!("route[{i}].handler"),
                    &label,
                    pools,
                    problems,
                );
            }
        }
    }
}

fn resolve(
    handler: &mut toml::Table,
    at: &str,
    label: &str,
    pools: &BTreeMap<String, toml::Table>,
    problems: &mut Problems,
) {
    let Some(named) = handler.remove("pool") else {
        return;
    };
    let Some(name) = named.as_str() else {
        problems.server(label, &format!("{at}.pool"), "must be a pool's name");
        return;
    };
    let Some(pool) = pools.get(name) else {
        let known: Vec<&str> = pools.keys().map(String::as_str).collect();
        let known = if known.is_empty() {
            "there is none".to_owned()
        } else {
            format!("there are {}", known.join(", "))
        };
        problems.server(
            label,
            &format!("{at}.pool"),
            format!("no [[pool]] named {name:?} ({known})"),
        );
        return;
    };
    for (key, value) in pool {
        if handler.contains_key(key) {
            problems.server(
                label,
                &format!("{at}.{key}"),
                format!("{key} comes from [[pool]] {name:?}: set it there, or drop pool"),
            );
            continue;
        }
        handler.insert(key.clone(), value.clone());
    }
}
