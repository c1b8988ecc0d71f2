//! `[[server.path]]` and `[[server.route.path]]`: path rules, each checked on its own (which
//! paths, a handler that answers requests) and against the rules before it (a rule an earlier
//! one leaves nothing is an error, as first match wins).

use std::path::Path;

use super::error::Problems;
use super::file::{HandlerFile, PathFile};
use super::handler::{validate_handler, HandlerAt};
use super::value::deserialize;
use super::HandlerSpec;
use crate::handler::{PathMatch, PathRule};

/// The rules under `owner` (`""` for a server's, `route[1].` for a route's); `None` after any
/// problem, every one reported.
pub(super) fn validate_paths(
    raw: Vec<toml::Table>,
    owner: &str,
    label: &str,
    base: &Path,
    problems: &mut Problems,
) -> Option<Vec<PathRule>> {
    let mut ok = true;
    let mut rules: Vec<PathRule> = Vec::with_capacity(raw.len());
    let mut taken: Vec<(usize, PathMatch)> = Vec::new();
    for (i, table) in raw.into_iter().enumerate() {
        let rule_key = format!("{owner}path[{i}]");
        let key = |field: &str| format!("{rule_key}.{field}");
        let report = &mut |k: &str, m: String| {
            let k = if k.is_empty() {
                rule_key.clone()
            } else {
                key(k)
            };
            problems.server(label, &k, m);
        };
        let Some(raw) = deserialize::<PathFile>(table, report) else {
            ok = false;
            continue;
        };
        let (field, paths) = match (&raw.exact, &raw.prefix) {
            (Some(exact), None) => ("exact", PathMatch::exact(exact)),
            (None, Some(prefix)) => ("prefix", PathMatch::prefix(prefix)),
            (exact, _) => {
                let message = if exact.is_some() {
                    "set exact or prefix, not both"
                } else {
                    "a path rule needs exact = \"/path\" or prefix = \"/path/\""
                };
                problems.server(label, &key("prefix"), message);
                ok = false;
                continue;
            }
        };
        let paths = (paths.map_err(|e| problems.server(label, &key(field), e.to_string()))).ok();
        if raw.strip_prefix && raw.prefix.is_none() {
            problems.server(
                label,
                &key("strip_prefix"),
                "only a prefix rule has a prefix to strip",
            );
            ok = false;
        }
        if let Some(paths) = &paths {
            if let Some((earlier, by)) = taken.iter().find(|(_, by)| by.covers(paths)) {
                problems.server(
                    label,
                    &key(field),
                    format!("unreachable: path[{earlier}] ({by}) comes first and takes every request this rule would"),
                );
                ok = false;
            }
            taken.push((i, paths.clone()));
        }
        let handler = rule_handler(raw.handler, &key("handler"), label, base, problems);
        let (Some(paths), Some(handler)) = (paths, handler) else {
            ok = false;
            continue;
        };
        let rule = match handler {
            HandlerSpec::Static(files) => PathRule::static_files(paths, files),
            HandlerSpec::Respond(fixed) => PathRule::respond(paths, fixed),
            HandlerSpec::Proxy(options) => PathRule::proxy(paths, *options),
            // Refused by `rule_handler`.
            _ => continue,
        };
        rules.push(rule.strip_prefix(raw.strip_prefix));
    }
    ok.then_some(rules)
}

/// A rule's handler: one that answers requests one by one.
fn rule_handler(
    raw: Option<HandlerFile>,
    key: &str,
    label: &str,
    base: &Path,
    problems: &mut Problems,
) -> Option<HandlerSpec> {
    let Some(raw) = raw else {
        problems.server(
            label,
            key,
            "a path rule needs a handler: static, respond or proxy",
        );
        return None;
    };
    let at = HandlerAt { label, key };
    match validate_handler(raw, &at, base, problems)? {
        handler @ (HandlerSpec::Static(_) | HandlerSpec::Respond(_) | HandlerSpec::Proxy(_)) => {
            Some(handler)
        }
        other => {
            at.report(
                problems,
                "type",
                format!(
                    "a path rule answers requests: use static, respond or proxy ({} is a whole connection's)",
                    other.kind()
                ),
            );
            None
        }
    }
}

/// Checks that a server's or route's own handler can have path rules in front of it.
pub(super) fn check_owner(
    handler: &HandlerSpec,
    owner: &str,
    label: &str,
    problems: &mut Problems,
) -> bool {
    if matches!(
        handler,
        HandlerSpec::Forward(_) | HandlerSpec::Passthrough(_) | HandlerSpec::External(_)
    ) {
        problems.server(
            label,
            &format!("{owner}path"),
            format!(
                "path rules need an HTTP handler to sit in front of: {} takes whole connections",
                handler.kind()
            ),
        );
        return false;
    }
    true
}
