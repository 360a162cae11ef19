//! systemd integration (`Type=notify`): READY, STATUS, RELOADING, STOPPING, and a watchdog that
//! only pets systemd while the root supervisor answers.
//!
//! Every call is a no-op without `NOTIFY_SOCKET`, so the same binary runs under systemd and by hand.

use fushi_actors::events;
use fushi_actors::supervisor::SupervisorMsg;
use ractor::ActorRef;
use sd_notify::NotifyState;
use std::time::Duration;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(event = events::SYSTEMD_NOTIFY_FAILED, error = %e, "cannot notify systemd");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn reloading() {
    send(&[NotifyState::Reloading]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// The watchdog period systemd asked for (`WATCHDOG_USEC`), if any.
///
/// Follows libsystemd's `sd_watchdog_enabled`: `WATCHDOG_PID`, when set, must name this process;
/// when unset the request is ours. (`sd_notify::watchdog_enabled` insists on `WATCHDOG_PID`.)
pub fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Pets the watchdog every `period / 4`, but only after the root supervisor answered a ping
/// within `period / 4`: a tree wedged for most of a period stops the petting and systemd restarts
/// the process, while one slow moment (a child's bounded start) does not.
pub async fn watchdog(root: ActorRef<SupervisorMsg>, period: Duration) {
    let mut tick = tokio::time::interval(period / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match ractor::call_t!(root, SupervisorMsg::Ping, (period / 4).as_millis() as u64) {
            Ok(()) => send(&[NotifyState::Watchdog]),
            Err(e) => tracing::error!(event = events::SYSTEMD_WATCHDOG_MISSED, error = %e,
                "root supervisor did not answer; withholding WATCHDOG=1"),
        }
    }
}
