//! HTTP responses, counted by the HTTP layer for every HTTP handler: by server and status class
//! (in the per-server table), by route for servers with routes, and how long they took.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;

use super::{SeenCounters, ServerMetrics};

/// The status classes, in the order of the series' `requests`.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteClassLabels {
    server: String,
    route: String,
    class: &'static str,
}

/// Responses by route and class, made as routes answer.
pub(crate) type RouteRequestCounters = SeenCounters<(Arc<str>, &'static str), RouteClassLabels>;

/// The labels of one route's class.
pub(super) fn route_class_labels(
    server: String,
    key: &(Arc<str>, &'static str),
) -> RouteClassLabels {
    RouteClassLabels {
        server,
        route: key.0.to_string(),
        class: key.1,
    }
}

/// What the HTTP layer counts: by status class and time in the server's series, by route in
/// its `http_routes`.
impl ServerMetrics {
    /// HTTP responses so far.
    pub(crate) fn http_responses(&self) -> u64 {
        self.series.requests.iter().map(|count| count.get()).sum()
    }

    /// 5xx responses so far.
    pub(crate) fn http_server_errors(&self) -> u64 {
        self.series.requests[4].get()
    }

    /// `(responses, of which 5xx)` on the route called `route`.
    pub(crate) fn http_on_route(&self, route: &str) -> (u64, u64) {
        let routes = &self.http_routes;
        let all = routes.sum(|(name, _)| &**name == route);
        let errors = routes.sum(|(name, class)| &**name == route && *class == "5xx");
        (all, errors)
    }

    /// A response head `status` on `route` (`None`: the server's own handler), `elapsed`
    /// after its request head.
    pub(crate) fn answered(
        &self,
        status: hyper::StatusCode,
        route: Option<&Arc<str>>,
        elapsed: Duration,
    ) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.series.requests[class].inc();
        self.series.request_duration.observe(elapsed.as_secs_f64());
        if let Some(route) = route {
            self.http_routes.count(&(route.clone(), CLASSES[class]));
        }
    }
}
