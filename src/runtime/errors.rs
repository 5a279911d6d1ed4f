//! What a failed run means: its class (W-RUN-3) and what happens next (W-RUN-4).

use std::time::Duration;

use super::engine::{RunError, RunErrorCause};
use crate::config::ErrorPolicy;
use crate::streams::stats::ErrorKind;

/// Error names (or message prefixes) that mean "the network failed", not the script.
const NETWORK_NAMES: &[&str] = &[
    "RequestTimeout",
    "NetworkError",
    "RateLimitExceeded",
    "InvalidAccessError",
    "AbortError",
    "ExchangeNotAvailable",
];

/// W-RUN-3: network errors are the outside world's fault and are retried patiently; everything
/// else (syntax, reference, type errors, limits) is critical.
pub fn classify(error: &RunError) -> ErrorKind {
    if error.cause != RunErrorCause::Thrown {
        return ErrorKind::Critical;
    }
    let named = NETWORK_NAMES
        .iter()
        .any(|n| error.name == *n || error.message.starts_with(n));
    let message = error.message.to_ascii_lowercase();
    let websocket = error.name.contains("WebSocket") || message.contains("websocket");
    let cloudfront = message.contains("cloudfront");
    let http_refusal = ["403", "451"].iter().any(|code| {
        ["http ", "status ", "status code ", "http error ", "code "]
            .iter()
            .any(|lead| message.contains(&format!("{lead}{code}")))
            || message.starts_with(code)
            || message.contains(&format!("{code} forbidden"))
            || message.contains(&format!("{code} unavailable for legal reasons"))
    });
    if named || websocket || cloudfront || http_refusal {
        ErrorKind::Network
    } else {
        ErrorKind::Critical
    }
}

/// What to do after a failed run.
#[derive(Clone, Debug, PartialEq)]
pub enum AfterError {
    /// Run again after this wait.
    Retry(Duration),
    /// Too many network errors in a row: wait this long, then run again.
    Pause(Duration),
    /// Stop the worker on this node, for this reason.
    Stop(String),
}

/// Error counters of one worker since it (re)started on this node.
#[derive(Clone, Debug, Default)]
pub struct ErrorTracker {
    /// Errors of any kind since the last success.
    pub consecutive: u32,
    /// Network errors in a row (reset by a success, a critical error, or a pause).
    pub consecutive_network: u32,
    /// Critical errors in a row.
    pub consecutive_critical: u32,
    /// Critical errors since the worker started.
    pub critical_total: u32,
}

fn backoff(base: Duration, factor: f64, n: u32, cap: Duration) -> Duration {
    let exponent = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
    let scaled = base.as_secs_f64() * factor.powi(exponent);
    // Too large (or not a number) for a Duration: the cap. `from_secs_f64` would panic.
    Duration::try_from_secs_f64(scaled).map_or(cap, |wait| wait.min(cap))
}

impl ErrorTracker {
    /// A run succeeded: backoff starts over.
    pub fn on_success(&mut self) {
        self.consecutive = 0;
        self.consecutive_network = 0;
        self.consecutive_critical = 0;
    }

    /// Counts an error of `kind` and decides what follows (W-RUN-4).
    pub fn on_error(&mut self, kind: ErrorKind, policy: &ErrorPolicy) -> AfterError {
        self.consecutive += 1;
        match kind {
            ErrorKind::Critical => {
                self.consecutive_network = 0;
                self.consecutive_critical += 1;
                self.critical_total += 1;
            }
            ErrorKind::Network => {
                self.consecutive_critical = 0;
                self.consecutive_network += 1;
            }
        }
        if kind == ErrorKind::Critical && self.critical_total >= policy.critical_stop_after {
            return AfterError::Stop(format!("{} critical errors", self.critical_total));
        }
        if self.consecutive >= policy.consecutive_stop_after {
            return AfterError::Stop(format!("{} consecutive errors", self.consecutive));
        }
        match kind {
            ErrorKind::Network if self.consecutive_network >= policy.network_pause_after => {
                self.consecutive_network = 0;
                AfterError::Pause(policy.network_pause)
            }
            ErrorKind::Network => AfterError::Retry(backoff(
                policy.network_backoff_base,
                policy.network_backoff_factor,
                self.consecutive_network,
                policy.network_backoff_cap,
            )),
            ErrorKind::Critical => AfterError::Retry(backoff(
                policy.critical_backoff_base,
                2.0,
                self.consecutive_critical,
                policy.critical_backoff_cap,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thrown(name: &str, message: &str) -> RunError {
        RunError {
            name: name.into(),
            message: message.into(),
            stack: None,
            cause: RunErrorCause::Thrown,
        }
    }

    #[test]
    fn classification() {
        for (name, message) in [
            ("RequestTimeout", "x"),
            ("NetworkError", "connection refused"),
            ("RateLimitExceeded", ""),
            ("InvalidAccessError", ""),
            ("AbortError", ""),
            ("ExchangeNotAvailable", ""),
            ("Error", "NetworkError: socket hang up"),
            ("Error", "WebSocket connection closed"),
            ("Error", "Request blocked by CloudFront"),
            ("Error", "HTTP 403 Forbidden"),
            ("Error", "request failed with status code 451"),
        ] {
            assert_eq!(
                classify(&thrown(name, message)),
                ErrorKind::Network,
                "{name}: {message}"
            );
        }
        for (name, message) in [
            ("TypeError", "x is not a function"),
            ("ReferenceError", "error is not defined"),
            ("Error", "HTTP 404"),
            ("Error", "1403 items"),
        ] {
            assert_eq!(
                classify(&thrown(name, message)),
                ErrorKind::Critical,
                "{name}: {message}"
            );
        }
        let cpu = RunError {
            cause: RunErrorCause::CpuTimeLimit,
            ..thrown("NetworkError", "")
        };
        assert_eq!(classify(&cpu), ErrorKind::Critical);
    }

    #[test]
    fn backoff_of_extreme_numbers_is_the_cap() {
        let cap = Duration::from_secs(60);
        let base = Duration::from_secs(1);
        assert_eq!(backoff(base, 1e300, 5, cap), cap);
        assert_eq!(backoff(base, f64::INFINITY, 2, cap), cap);
        assert_eq!(backoff(base, f64::NAN, 2, cap), cap);
        assert_eq!(backoff(base, 2.0, u32::MAX, cap), cap);
        assert_eq!(backoff(base, 2.0, 1, cap), base);
    }

    #[test]
    fn network_backoff_grows_caps_and_pauses() {
        let policy = ErrorPolicy::default();
        let mut t = ErrorTracker::default();
        let waits: Vec<AfterError> = (0..20).map(|_| t.on_error(ErrorKind::Network, &policy)).collect();
        assert_eq!(waits[0], AfterError::Retry(Duration::from_secs(5)));
        assert_eq!(waits[1], AfterError::Retry(Duration::from_secs_f64(7.5)));
        assert_eq!(waits[2], AfterError::Retry(Duration::from_secs_f64(11.25)));
        assert_eq!(waits[18], AfterError::Retry(Duration::from_secs(60)));
        assert_eq!(waits[19], AfterError::Pause(Duration::from_secs(300)));
        // After the pause the backoff starts again.
        assert_eq!(
            t.on_error(ErrorKind::Network, &policy),
            AfterError::Retry(Duration::from_secs(5))
        );
    }

    #[test]
    fn critical_backoff_and_stop_after_ten() {
        let policy = ErrorPolicy::default();
        let mut t = ErrorTracker::default();
        let waits: Vec<AfterError> = (0..9).map(|_| t.on_error(ErrorKind::Critical, &policy)).collect();
        assert_eq!(waits[0], AfterError::Retry(Duration::from_secs(1)));
        assert_eq!(waits[1], AfterError::Retry(Duration::from_secs(2)));
        assert_eq!(waits[3], AfterError::Retry(Duration::from_secs(8)));
        assert_eq!(waits[4], AfterError::Retry(Duration::from_secs(10)));
        // Successes reset the backoff but not the count of critical errors.
        t.on_success();
        assert_eq!(
            t.on_error(ErrorKind::Critical, &policy),
            AfterError::Stop("10 critical errors".into())
        );
    }

    #[test]
    fn fifty_consecutive_errors_stop() {
        let policy = ErrorPolicy {
            network_pause_after: 1000,
            ..ErrorPolicy::default()
        };
        let mut t = ErrorTracker::default();
        for _ in 0..49 {
            assert!(matches!(
                t.on_error(ErrorKind::Network, &policy),
                AfterError::Retry(_)
            ));
        }
        assert_eq!(
            t.on_error(ErrorKind::Network, &policy),
            AfterError::Stop("50 consecutive errors".into())
        );
    }
}
