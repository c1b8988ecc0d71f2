//! `handler = { type = ... }`: the built-in handlers as a config file names them.

use std::path::Path;

use super::error::Problems;
use super::file::{HandlerFile, ProxyProtocolFile};
use super::value::duration;
use super::HandlerSpec;
use crate::handler::{Backend, ForwardOptions, ProxyProtocol, StaticHandler};

pub(super) fn validate_handler(
    raw: HandlerFile,
    label: &str,
    base: &Path,
    problems: &mut Problems,
) -> Option<HandlerSpec> {
    match raw {
        HandlerFile::Status { show_servers } => Some(HandlerSpec::Status { show_servers }),
        HandlerFile::Static {
            root,
            serve_dotfiles,
        } => {
            let root = base.join(root);
            match StaticHandler::new(&root) {
                Ok(files) => Some(HandlerSpec::Static(files.serve_dotfiles(serve_dotfiles))),
                Err(e) => {
                    let message = format!("cannot serve {}: {e}", root.display());
                    problems.server(label, "handler.root", message);
                    None
                }
            }
        }
        HandlerFile::Forward {
            backend,
            connect_timeout,
            idle_timeout,
            proxy_protocol,
        } => {
            let mut ok = true;
            let backend = backend
                .parse::<Backend>()
                .map_err(|e| problems.server(label, "handler.backend", e))
                .ok();
            let mut timeout = |key: &str, text: Option<String>| {
                let parsed = duration(text.as_deref(), true, &mut |m| {
                    problems.server(label, key, m)
                });
                ok &= text.is_none() || parsed.is_some();
                parsed
            };
            let connect_timeout = timeout("handler.connect_timeout", connect_timeout);
            let idle_timeout = timeout("handler.idle_timeout", idle_timeout);
            let mut options = ForwardOptions::new(backend.filter(|_| ok)?);
            options.connect_timeout = connect_timeout.unwrap_or(options.connect_timeout);
            options.idle_timeout = idle_timeout.or(options.idle_timeout);
            options.proxy_protocol = proxy_protocol.map(|version| match version {
                ProxyProtocolFile::V1 => ProxyProtocol::V1,
                ProxyProtocolFile::V2 => ProxyProtocol::V2,
            });
            Some(HandlerSpec::Forward(options))
        }
    }
}
