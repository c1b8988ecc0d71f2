//! HTTP responses, counted by the HTTP layer for every HTTP handler: by server and status class
//! (in the per-server table), by route for servers with routes, and how long they took.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;

use super::{SeenCounters, ServerSeries};

/// The status classes, in the order of [`HttpMetrics`]' counters.
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

/// A server's HTTP request series, for the HTTP layer to count responses with.
#[derive(Debug)]
pub(crate) struct HttpMetrics {
    /// Where the counts by status class and the durations are.
    pub(super) series: Arc<ServerSeries>,
    pub(super) routes: RouteRequestCounters,
}

impl HttpMetrics {
    /// Responses so far.
    pub(crate) fn total(&self) -> u64 {
        self.series.requests.iter().map(|count| count.get()).sum()
    }

    /// 5xx responses so far.
    pub(crate) fn server_errors(&self) -> u64 {
        self.series.requests[4].get()
    }

    /// `(responses, of which 5xx)` on the route called `route`.
    pub(crate) fn on_route(&self, route: &str) -> (u64, u64) {
        let all = self.routes.sum(|(name, _)| &**name == route);
        let errors = self
            .routes
            .sum(|(name, class)| &**name == route && *class == "5xx");
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
            self.routes.count(&(route.clone(), CLASSES[class]));
        }
    }
}
