//! Paused-clock tests of the supervisor's restart semantics (SPEC §3.1): backoff, escalation, recovery, restart kinds, strategies, shutdown and sub-supervisors.
//!
//! Every test runs on tokio's paused clock: time only moves when every task is idle, straight to
//! the next timer, so restart instants are exact and no test sleeps for real. Test children record
//! what happens to them with the clock's time since the test began (see `harness`).

mod harness;

use fushi_actors::alert::Alert;
use fushi_actors::board::ActorState;
use fushi_actors::board::Health;
use fushi_actors::supervisor::{
    ControlError, RestartKind, RestartPolicy, Strategy, SupervisorMsg, Verb,
};
use harness::{exact_policy, gaps, ms, secs, Ctl, Harness, Mode, What};
use ractor::call;
use std::time::Duration;

fn w(who: &str, what: What) -> (String, What) {
    (who.to_string(), what)
}

// --- 1. backoff steps --------------------------------------------------------------------------

/// A child that fails on every incarnation is retried after exactly 5, 10, 15, 15 s.
async fn assert_exact_backoff(mode: Mode) {
    let mut h = Harness::new().await;
    let a = Ctl::always(mode);
    h.spawn(Strategy::OneForOne, vec![h.child("a", &a)]).await;

    h.rec.until(secs(50)).await;
    let starts = h.rec.starts("a");
    assert_eq!(starts, [0, 5, 15, 30, 45].map(secs), "{mode:?}");
    assert_eq!(gaps(&starts), [5, 10, 15, 15].map(secs), "{mode:?}");
    assert_eq!(
        h.rec.times("a", What::Fail),
        starts,
        "each incarnation failed at once"
    );

    let scheduled: Vec<u64> = h
        .audit("supervisor.child.restart_scheduled", "a")
        .iter()
        .map(|e| e.payload["delay_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(scheduled, [5_000, 10_000, 15_000, 15_000, 15_000]);

    let info = h.info("a").await;
    assert_eq!(info.state, ActorState::Backoff);
    assert_eq!(info.consecutive_failures, 5);
    let board = h.board("a");
    assert_eq!(board.state, ActorState::Backoff);
    assert_eq!(board.failures, 5);
    assert_eq!(board.consecutive_failures, 5);
    assert!(board.next_restart_at.is_some());
}

#[tokio::test(start_paused = true)]
async fn backoff_is_5_10_15_15_when_pre_start_fails() {
    assert_exact_backoff(Mode::FailStart).await;
}

#[tokio::test(start_paused = true)]
async fn backoff_is_5_10_15_15_when_pre_start_panics() {
    assert_exact_backoff(Mode::PanicStart).await;
}

#[tokio::test(start_paused = true)]
async fn backoff_is_5_10_15_15_when_the_first_message_fails() {
    assert_exact_backoff(Mode::FailAfter(Duration::ZERO)).await;
}

#[tokio::test(start_paused = true)]
async fn backoff_is_5_10_15_15_when_the_first_message_panics() {
    assert_exact_backoff(Mode::PanicAfter(Duration::ZERO)).await;
}

// --- 2. jitter ---------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn jitter_adds_less_than_one_second_to_each_step() {
    let mut h = Harness::new().await;
    let a = Ctl::always(Mode::FailStart);
    let spec = h.child("a", &a).with_policy(RestartPolicy::default());
    h.spawn(Strategy::OneForOne, vec![spec]).await;

    h.rec.until(secs(200)).await;
    let starts = h.rec.starts("a");
    let gaps = gaps(&starts);
    assert!(gaps.len() >= 10, "only {} restarts in 200 s", gaps.len());
    let scheduled: Vec<Duration> = h
        .audit("supervisor.child.restart_scheduled", "a")
        .iter()
        .map(|e| ms(e.payload["delay_ms"].as_u64().unwrap()))
        .collect();
    let policy = RestartPolicy::default();
    for (i, gap) in gaps.iter().enumerate() {
        let n = i as u32 + 1;
        let d = policy.base_delay(n);
        assert!(
            *gap >= d && *gap < d + secs(1),
            "restart {n}: gap {gap:?} outside [{d:?}, {d:?} + 1s)"
        );
        assert_eq!(*gap, scheduled[i], "restart {n} came when it was scheduled");
    }
    assert!(
        gaps.iter()
            .enumerate()
            .any(|(i, g)| *g != policy.base_delay(i as u32 + 1)),
        "no jitter at all in {gaps:?}"
    );
}

// --- 3. escalation -----------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn escalates_exactly_once_at_the_fourth_consecutive_failure() {
    let mut h = Harness::new().await;
    let a = Ctl::always(Mode::FailStart);
    h.spawn(Strategy::OneForOne, vec![h.child("a", &a)]).await;

    // Failures at 0, 5, 15 s: three, not yet escalated.
    h.rec.until(secs(29)).await;
    assert!(h.alerts().is_empty());
    assert!(!h.info("a").await.escalated);
    assert!(!h.board("a").escalated);

    // Failures at 30 (the 4th), 45, 60, 75, 90 s: eight in all, one escalation.
    h.rec.until(secs(100)).await;
    assert_eq!(h.rec.starts("a").len(), 8);
    let alerts = h.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let (at, alert) = &alerts[0];
    assert_eq!(*at, secs(30), "sent at the 4th failure");
    match alert {
        Alert::Escalation {
            actor,
            failures,
            last_error,
            ..
        } => {
            assert_eq!(actor, "a");
            assert_eq!(*failures, 4);
            let last_error = last_error.as_deref().unwrap_or_default();
            assert!(last_error.contains("a refused to start"), "{last_error}");
        }
        other => panic!("expected an escalation, got {other:?}"),
    }

    // The audit trail agrees: one escalation, right after the 4th failure.
    let trail: Vec<String> = h
        .audit
        .events()
        .into_iter()
        .filter(|e| e.actor.as_deref() == Some("a"))
        .filter(|e| e.event != "supervisor.child.restart_scheduled")
        .map(|e| e.event)
        .collect();
    let failed = "supervisor.child.failed";
    let escalated = "supervisor.child.escalated";
    let mut expected = vec![failed; 4];
    // The alert itself goes to the outbox (h.alerts()); its delivery is the alert actor's.
    expected.push(escalated);
    expected.extend([failed; 4]);
    assert_eq!(trail, expected);
    let esc = h.audit(escalated, "a");
    assert_eq!(esc[0].payload["failures"], 4);

    let info = h.info("a").await;
    assert!(info.escalated);
    assert_eq!(info.consecutive_failures, 8);
    assert!(h.board("a").escalated);
    assert_eq!(h.board.snapshot().0.health, Health::Red);
}

#[tokio::test(start_paused = true)]
async fn an_immediate_restart_writes_down_the_same_trail_after_the_replacement_starts() {
    // Zero backoff takes the fast path: the replacement starts before its failure is logged,
    // audited and counted; the record must still be complete, in order, with one escalation.
    let mut h = Harness::new().await;
    let a = Ctl::script([Mode::FailStart; 6], Mode::Run);
    let policy = RestartPolicy {
        backoff: vec![Duration::ZERO],
        ..exact_policy()
    };
    h.spawn(
        Strategy::OneForOne,
        vec![h.child("a", &a).with_policy(policy)],
    )
    .await;
    h.rec.until(secs(1)).await;
    assert_eq!(
        h.rec.starts("a").len(),
        7,
        "six failed starts, then one that runs"
    );
    assert_eq!(h.state("a").await, ActorState::Running);
    let trail: Vec<String> = h
        .audit
        .events()
        .into_iter()
        .filter(|e| e.actor.as_deref() == Some("a"))
        // The alert actor sends in its own time: checked on its own below.
        .filter(|e| e.event != "alert.sent")
        .map(|e| e.event)
        .collect();
    let (failed, scheduled, restarted) = (
        "supervisor.child.failed",
        "supervisor.child.restart_scheduled",
        "supervisor.child.restarted",
    );
    let mut expected = vec![failed, scheduled];
    for n in 2..=6 {
        expected.push(failed);
        if n == 4 {
            expected.push("supervisor.child.escalated");
        }
        expected.push(scheduled);
    }
    expected.push(restarted);
    assert_eq!(trail, expected);
    let sched = h.audit(scheduled, "a");
    assert!(
        sched.iter().all(|e| e.payload["delay_ms"] == 0),
        "{sched:?}"
    );
    assert_eq!(h.alerts().len(), 1);
    let board = h.board("a");
    assert_eq!((board.failures, board.restarts), (6, 1), "{board:?}");
    assert!(board.escalated);
}

// --- 4. stable runs end a streak ---------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_stable_run_ends_the_streak_and_sends_recovered() {
    let mut h = Harness::new().await;
    // Fails at 0, 5, 15, 30 s (escalated); the start at 45 s runs and fails at 145 s.
    let mut script = vec![Mode::FailStart; 4];
    script.push(Mode::FailAfter(secs(100)));
    let a = Ctl::script(script, Mode::Run);
    h.spawn(Strategy::OneForOne, vec![h.child("a", &a)]).await;

    h.rec.until(secs(104)).await;
    assert_eq!(h.rec.starts("a"), [0, 5, 15, 30, 45].map(secs));
    let info = h.info("a").await;
    assert_eq!(
        (info.state, info.consecutive_failures),
        (ActorState::Running, 4)
    );
    assert!(info.escalated);
    assert_eq!(h.board("a").recovered, 0);

    // stable_after (60 s) after the start at 45 s.
    h.rec.until(secs(106)).await;
    let info = h.info("a").await;
    assert_eq!(info.consecutive_failures, 0);
    assert!(!info.escalated);
    let board = h.board("a");
    assert_eq!(board.recovered, 1);
    assert_eq!(board.consecutive_failures, 0);
    assert!(!board.escalated);
    let alerts = h.alerts();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert_eq!(alerts[1].0, secs(105));
    assert!(
        matches!(&alerts[1].1, Alert::Recovered { actor, failures: 4, .. } if actor == "a"),
        "{:?}",
        alerts[1].1
    );
    let rec = h.audit("supervisor.child.recovered", "a");
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].payload["after_failures"], 4);
    assert_eq!(rec[0].payload["was_escalated"], true);

    // The failure at 145 s starts a new streak: back to 5 s.
    h.rec.until(secs(200)).await;
    let starts = h.rec.starts("a");
    assert_eq!(starts, [0, 5, 15, 30, 45, 150].map(secs));
    assert_eq!(h.rec.times("a", What::Fail).last(), Some(&secs(145)));
    let info = h.info("a").await;
    assert_eq!(
        (info.state, info.consecutive_failures),
        (ActorState::Running, 1)
    );
    assert!(!info.escalated);

    // That one-failure streak ends at 210 s: recovered again, but no notice (never escalated).
    h.rec.until(secs(211)).await;
    assert_eq!(h.board("a").recovered, 2);
    assert_eq!(h.alerts().len(), 2);
    let board = h.board("a");
    assert_eq!((board.failures, board.restarts), (5, 2));
}

#[tokio::test(start_paused = true)]
async fn a_failure_inside_stable_after_continues_the_streak() {
    let mut h = Harness::new().await;
    // Runs 59 s (< stable_after) and fails, twice.
    let a = Ctl::script([Mode::FailAfter(secs(59)); 2], Mode::Run);
    h.spawn(Strategy::OneForOne, vec![h.child("a", &a)]).await;

    h.rec.until(secs(300)).await;
    // 0 + 59 + 5 = 64; 64 + 59 + 10 = 133.
    assert_eq!(h.rec.starts("a"), [0, 64, 133].map(secs));
    assert_eq!(
        h.board("a").recovered,
        1,
        "only the final run at 133 s was stable"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_stable_after_starts_a_new_streak() {
    let mut h = Harness::new().await;
    // Runs 61 s (> stable_after) and fails, twice.
    let a = Ctl::script([Mode::FailAfter(secs(61)); 2], Mode::Run);
    h.spawn(Strategy::OneForOne, vec![h.child("a", &a)]).await;

    h.rec.until(secs(131)).await;
    // 0 + 61 + 5 = 66; 66 + 61 + 5 = 132: the second delay is 5 s again, not 10 s.
    assert_eq!(h.rec.starts("a"), [0, 66].map(secs));
    assert_eq!(
        h.board("a").recovered,
        1,
        "the run from 66 s was stable at 126 s"
    );
    h.rec.until(secs(133)).await;
    assert_eq!(h.rec.starts("a"), [0, 66, 132].map(secs));
}

// --- 5. stop and restart during backoff ---------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_stop_during_backoff_cancels_the_pending_restart() {
    let mut h = Harness::new().await;
    let a = Ctl::always(Mode::FailStart);
    h.spawn(Strategy::OneForOne, vec![h.child("a", &a)]).await;
    assert_eq!(h.state("a").await, ActorState::Backoff);

    h.rec.until(secs(2)).await;
    h.stop(&["a"]).await;
    assert_eq!(h.state("a").await, ActorState::Stopped);

    h.rec.until(secs(1000)).await;
    h.ping().await;
    assert_eq!(h.rec.starts("a"), [secs(0)], "restarted despite the stop");
    assert_eq!(h.state("a").await, ActorState::Stopped);
    let board = h.board("a");
    assert_eq!(board.state, ActorState::Stopped);
    assert_eq!(board.next_restart_at, None);

    // A manual start is a fresh start.
    a.set(Mode::Run);
    h.start(&["a"]).await;
    assert_eq!(h.rec.starts("a"), [0, 1000].map(secs));
    let info = h.info("a").await;
    assert_eq!(
        (info.state, info.consecutive_failures),
        (ActorState::Running, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_restart_during_backoff_replaces_the_pending_restart() {
    let mut h = Harness::new().await;
    let a = Ctl::always(Mode::FailStart);
    h.spawn(Strategy::OneForOne, vec![h.child("a", &a)]).await;

    // Failure 1 at 0 s schedules a restart at 5 s; the ordered restart at 2 s fails too
    // (failure 2), which schedules one at 12 s. The one due at 5 s must not happen.
    h.rec.until(secs(2)).await;
    h.restart(&["a"]).await;
    h.rec.until(secs(28)).await;
    assert_eq!(h.rec.starts("a"), [0, 2, 12, 27].map(secs));
}

#[tokio::test(start_paused = true)]
async fn a_successful_restart_during_backoff_is_the_only_start() {
    let mut h = Harness::new().await;
    let a = Ctl::script([Mode::FailStart], Mode::Run);
    h.spawn(Strategy::OneForOne, vec![h.child("a", &a)]).await;

    h.rec.until(secs(2)).await;
    h.restart(&["a"]).await;
    h.rec.until(secs(100)).await;
    assert_eq!(h.rec.starts("a"), [0, 2].map(secs));
    assert!(h.rec.times("a", What::Stop).is_empty());
    assert_eq!(h.state("a").await, ActorState::Running);
}

#[tokio::test(start_paused = true)]
async fn a_restart_naming_a_child_twice_restarts_it_once() {
    let mut h = Harness::new().await;
    let specs = vec![h.runner("a"), h.runner("b")];
    h.spawn(Strategy::OneForOne, specs).await;

    h.rec.until(secs(1)).await;
    h.restart(&["a", "b", "a"]).await;
    assert_eq!(h.rec.starts("a"), [0, 1].map(secs));
    assert_eq!(h.rec.starts("b"), [0, 1].map(secs));
    assert_eq!(
        h.rec.since(secs(1)),
        [
            w("b", What::Stop),
            w("a", What::Stop),
            w("a", What::Start),
            w("b", What::Start)
        ]
    );
}

// --- 6. restart kinds --------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_transient_child_that_exits_normally_is_not_restarted() {
    let mut h = Harness::new().await;
    let a = Ctl::script([Mode::StopAfter(secs(1))], Mode::Run);
    let spec = h.child("a", &a).with_restart(RestartKind::Transient);
    h.spawn(Strategy::OneForOne, vec![spec]).await;

    h.rec.until(secs(1000)).await;
    assert_eq!(h.rec.starts("a"), [secs(0)]);
    assert_eq!(h.state("a").await, ActorState::Stopped);
    let board = h.board("a");
    assert_eq!((board.state, board.failures), (ActorState::Stopped, 0));
    let stopped = h.audit("supervisor.child.stopped", "a");
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].payload["reason"], "exited normally");
}

#[tokio::test(start_paused = true)]
async fn a_transient_child_that_fails_is_restarted() {
    let mut h = Harness::new().await;
    let a = Ctl::script([Mode::FailAfter(secs(1))], Mode::Run);
    let b = Ctl::script([Mode::FailStart], Mode::Run);
    let specs = vec![
        h.child("a", &a).with_restart(RestartKind::Transient),
        h.child("b", &b).with_restart(RestartKind::Transient),
    ];
    h.spawn(Strategy::OneForOne, specs).await;

    h.rec.until(secs(100)).await;
    assert_eq!(h.rec.starts("a"), [0, 6].map(secs));
    assert_eq!(h.rec.starts("b"), [0, 5].map(secs));
    assert_eq!(h.state("a").await, ActorState::Running);
    assert_eq!(h.state("b").await, ActorState::Running);
}

#[tokio::test(start_paused = true)]
async fn a_temporary_child_is_never_restarted() {
    let mut h = Harness::new().await;
    let modes = [
        ("fails", Mode::FailAfter(secs(1))),
        ("panics", Mode::PanicAfter(secs(1))),
        ("exits", Mode::StopAfter(secs(1))),
        ("refuses", Mode::FailStart),
    ];
    let specs = modes
        .iter()
        .map(|(name, mode)| {
            h.child(name, &Ctl::script([*mode], Mode::Run))
                .with_restart(RestartKind::Temporary)
        })
        .collect();
    h.spawn(Strategy::OneForOne, specs).await;

    h.rec.until(secs(1000)).await;
    for (name, _) in modes {
        assert_eq!(h.rec.starts(name), [secs(0)], "{name} was restarted");
        assert_eq!(h.state(name).await, ActorState::Stopped, "{name}");
        assert_eq!(h.board(name).state, ActorState::Stopped, "{name}");
        assert!(
            h.audit("supervisor.child.restart_scheduled", name)
                .is_empty(),
            "{name}"
        );
    }
    assert_eq!(h.board("fails").failures, 1);
    assert_eq!(h.board("refuses").failures, 1);
    assert_eq!(h.board("exits").failures, 0);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_child_that_stops_by_itself_is_restarted_as_a_failure() {
    let mut h = Harness::new().await;
    let a = Ctl::script([Mode::StopAfter(secs(1))], Mode::Run);
    h.spawn(Strategy::OneForOne, vec![h.child("a", &a)]).await;

    h.rec.until(secs(7)).await;
    assert_eq!(h.rec.starts("a"), [0, 6].map(secs));
    let info = h.info("a").await;
    assert_eq!(
        (info.state, info.consecutive_failures),
        (ActorState::Running, 1)
    );
    let board = h.board("a");
    assert_eq!((board.failures, board.restarts), (1, 1));
    let last_error = board.last_error.unwrap_or_default();
    assert!(last_error.contains("stopped by itself"), "{last_error}");
}

// --- 7. strategies -----------------------------------------------------------------------------

/// Four running children; `b` fails at 10 s and then runs. Returns the harness at 100 s.
async fn b_fails_at_10s(strategy: Strategy) -> Harness {
    let mut h = Harness::new().await;
    let b = Ctl::script([Mode::FailAfter(secs(10))], Mode::Run);
    let specs = vec![
        h.runner("a"),
        h.child("b", &b),
        h.runner("c"),
        h.runner("d"),
    ];
    h.spawn(strategy, specs).await;
    h.rec.until(secs(100)).await;
    for name in ["a", "b", "c", "d"] {
        assert_eq!(h.state(name).await, ActorState::Running, "{name}");
    }
    h
}

#[tokio::test(start_paused = true)]
async fn one_for_one_restarts_only_the_failed_child() {
    let h = b_fails_at_10s(Strategy::OneForOne).await;
    assert_eq!(
        h.rec.since(secs(1)),
        [w("b", What::Fail), w("b", What::Start)]
    );
    assert_eq!(h.rec.starts("b"), [0, 15].map(secs));
    for name in ["a", "c", "d"] {
        assert_eq!(h.rec.starts(name), [secs(0)], "{name}");
        assert_eq!(h.board(name).restarts, 0, "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn one_for_all_stops_siblings_in_reverse_and_restarts_all_in_order() {
    let h = b_fails_at_10s(Strategy::OneForAll).await;
    assert_eq!(
        h.rec.since(secs(1)),
        [
            w("b", What::Fail),
            w("d", What::Stop),
            w("c", What::Stop),
            w("a", What::Stop),
            w("a", What::Start),
            w("b", What::Start),
            w("c", What::Start),
            w("d", What::Start),
        ]
    );
    for name in ["a", "c", "d"] {
        assert_eq!(h.rec.times(name, What::Stop), [secs(10)], "{name}");
        assert_eq!(h.rec.starts(name), [0, 15].map(secs), "{name}");
        let board = h.board(name);
        assert_eq!((board.restarts, board.failures), (1, 0), "{name}");
    }
    assert_eq!(h.rec.starts("b"), [0, 15].map(secs));
    let board = h.board("b");
    assert_eq!((board.restarts, board.failures), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    let h = b_fails_at_10s(Strategy::RestForOne).await;
    assert_eq!(
        h.rec.since(secs(1)),
        [
            w("b", What::Fail),
            w("d", What::Stop),
            w("c", What::Stop),
            w("b", What::Start),
            w("c", What::Start),
            w("d", What::Start),
        ]
    );
    assert_eq!(h.rec.starts("a"), [secs(0)]);
    for name in ["b", "c", "d"] {
        assert_eq!(h.rec.starts(name), [0, 15].map(secs), "{name}");
    }
    assert_eq!(h.board("a").restarts, 0);
}

#[tokio::test(start_paused = true)]
async fn one_for_all_does_not_bring_back_a_temporary_sibling() {
    let mut h = Harness::new().await;
    let b = Ctl::script([Mode::FailAfter(secs(10))], Mode::Run);
    let specs = vec![
        h.runner("a"),
        h.child("b", &b),
        h.runner("c").with_restart(RestartKind::Temporary),
    ];
    h.spawn(Strategy::OneForAll, specs).await;

    h.rec.until(secs(100)).await;
    assert_eq!(
        h.rec.since(secs(1)),
        [
            w("b", What::Fail),
            w("c", What::Stop),
            w("a", What::Stop),
            w("a", What::Start),
            w("b", What::Start),
        ]
    );
    assert_eq!(h.state("c").await, ActorState::Stopped);
    assert_eq!(h.state("a").await, ActorState::Running);
}

// --- 8. shutdown -------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn shutdown_stops_children_in_reverse_order() {
    let mut h = Harness::new().await;
    let specs = vec![h.runner("a"), h.runner("b"), h.runner("c")];
    h.spawn(Strategy::OneForOne, specs).await;

    h.rec.until(secs(10)).await;
    h.shutdown().await;
    assert_eq!(h.rec.now(), secs(10), "graceful stops take no time");
    assert_eq!(
        h.rec.since(secs(10)),
        [w("c", What::Stop), w("b", What::Stop), w("a", What::Stop)]
    );
    for name in ["a", "b", "c"] {
        assert_eq!(h.board(name).state, ActorState::Stopped, "{name}");
        let stopped = h.audit("supervisor.child.stopped", name);
        assert_eq!(stopped.len(), 1, "{name}");
        assert_eq!(stopped[0].payload["reason"], "shutdown");
        assert_eq!(stopped[0].payload["graceful"], true);
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_kills_a_hung_child_after_exactly_its_shutdown_timeout() {
    let mut h = Harness::new().await;
    let hung = Ctl::always(Mode::HangInHandler);
    let specs = vec![
        h.runner("a"),
        h.child("b", &hung).with_shutdown_timeout(secs(3)),
        h.runner("c"),
    ];
    h.spawn(Strategy::OneForOne, specs).await;

    h.rec.until(secs(10)).await;
    h.shutdown().await;
    assert_eq!(
        h.rec.now(),
        secs(13),
        "shutdown took 3 s: b's timeout, nothing more"
    );
    let tail: Vec<_> = h
        .rec
        .all()
        .into_iter()
        .filter(|r| r.at >= secs(10))
        .collect();
    let got: Vec<_> = tail
        .iter()
        .map(|r| (r.at, r.who.as_str(), r.what))
        .collect();
    assert_eq!(
        got,
        [
            (secs(10), "c", What::Stop),
            (secs(13), "b", What::Killed),
            (secs(13), "a", What::Stop),
        ]
    );
    let stopped = h.audit("supervisor.child.stopped", "b");
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].payload["graceful"], false);
    assert_eq!(h.board("b").state, ActorState::Stopped);
}

/// ractor's kill interrupts a message handler but not `post_stop`: the supervisor gives the child
/// its `shutdown_timeout` to stop, kills it, and when the kill has not landed 1 s later aborts the
/// child's task, dropping its state, so nothing of it runs on; then the shutdown carries on.
#[tokio::test(start_paused = true)]
async fn shutdown_aborts_a_child_hung_in_post_stop_one_second_after_its_kill() {
    let mut h = Harness::new().await;
    let hung = Ctl::always(Mode::HangInStop);
    let specs = vec![
        h.runner("a"),
        h.child("b", &hung).with_shutdown_timeout(secs(3)),
        h.runner("c"),
    ];
    h.spawn(Strategy::OneForOne, specs).await;

    h.rec.until(secs(10)).await;
    h.shutdown().await;
    assert_eq!(
        h.rec.now(),
        secs(14),
        "3 s to stop + 1 s for the kill to land"
    );
    let tail: Vec<_> = h
        .rec
        .all()
        .into_iter()
        .filter(|r| r.at >= secs(10))
        .collect();
    let got: Vec<_> = tail
        .iter()
        .map(|r| (r.at, r.who.as_str(), r.what))
        .collect();
    assert_eq!(
        got,
        [
            (secs(10), "c", What::Stop),
            (secs(10), "b", What::Stop),
            (secs(14), "b", What::Killed),
            (secs(14), "a", What::Stop),
        ]
    );
    let stopped = h.audit("supervisor.child.stopped", "b");
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].payload["graceful"], false);
    assert_eq!(h.board("b").state, ActorState::Stopped);
}

// --- 9. give_up_after --------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn give_up_after_makes_the_child_fatal_until_a_manual_start() {
    let mut h = Harness::new().await;
    let a = Ctl::always(Mode::FailStart);
    let policy = RestartPolicy {
        give_up_after: 5,
        ..harness::exact_policy()
    };
    h.spawn(
        Strategy::OneForOne,
        vec![h.child("a", &a).with_policy(policy)],
    )
    .await;

    // Failures at 0, 5, 15, 30 (escalated), 45 s (the 5th: fatal).
    h.rec.until(secs(1000)).await;
    assert_eq!(h.rec.starts("a"), [0, 5, 15, 30, 45].map(secs));
    let info = h.info("a").await;
    assert_eq!(
        (info.state, info.consecutive_failures),
        (ActorState::Fatal, 5)
    );
    let board = h.board("a");
    assert_eq!((board.state, board.failures), (ActorState::Fatal, 5));
    assert_eq!(board.next_restart_at, None);
    assert_eq!(h.board.snapshot().0.health, Health::Red);
    let fatal = h.audit("supervisor.child.fatal", "a");
    assert_eq!(fatal.len(), 1);
    assert_eq!(fatal[0].payload["failures"], 5);
    assert_eq!(h.audit("supervisor.child.restart_scheduled", "a").len(), 4);
    let alerts: Vec<&str> = h.alerts().iter().map(|(_, a)| a.template()).collect();
    assert_eq!(
        alerts,
        ["escalation", "fatal"],
        "the escalation at the 4th failure, then the giving up"
    );

    // A manual start revives it with a fresh streak: its next failure waits 5 s, not 15.
    a.set(Mode::FailAfter(secs(10)));
    h.start(&["a"]).await;
    let info = h.info("a").await;
    assert_eq!(
        (info.state, info.consecutive_failures),
        (ActorState::Running, 0)
    );
    assert!(!info.escalated);
    assert_eq!(h.board("a").state, ActorState::Running);
    h.rec.until(secs(1016)).await;
    assert_eq!(h.rec.starts("a")[5..], [1000, 1015].map(secs));
    assert_eq!(h.info("a").await.consecutive_failures, 1);
}

// --- 10. sub-supervisors -----------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_sub_supervisor_names_its_children_by_path_and_restarts_them_itself() {
    let mut h = Harness::new().await;
    let x = Ctl::script([Mode::FailAfter(secs(10))], Mode::Run);
    let collectors = h.sub_supervisor(
        "collectors",
        Strategy::OneForOne,
        vec![h.child("x", &x), h.runner("y")],
    );
    h.spawn(Strategy::OneForOne, vec![h.runner("a"), collectors])
        .await;

    for path in ["a", "collectors", "collectors/x", "collectors/y"] {
        assert_eq!(h.board(path).state, ActorState::Running, "{path}");
    }
    let root: Vec<_> = h.children().await.into_iter().map(|c| c.path).collect();
    assert_eq!(root, ["a", "collectors"]);
    let inner = call!(x.supervisor(), SupervisorMsg::Children).unwrap();
    let inner: Vec<_> = inner.into_iter().map(|c| (c.name, c.path)).collect();
    assert_eq!(
        inner,
        [
            ("x".to_string(), "collectors/x".to_string()),
            ("y".to_string(), "collectors/y".to_string())
        ]
    );

    // x fails at 10 s; its own supervisor restarts it at 15 s; nothing above it moves.
    h.rec.until(secs(20)).await;
    assert_eq!(h.rec.starts("x"), [0, 15].map(secs));
    assert_eq!(h.rec.starts("y"), [secs(0)]);
    assert_eq!(h.rec.starts("a"), [secs(0)]);
    let board = h.board("collectors/x");
    assert_eq!((board.restarts, board.failures), (1, 1));
    let board = h.board("collectors");
    assert_eq!(board.state, ActorState::Running);
    assert_eq!((board.restarts, board.failures), (0, 0));
    assert_eq!(
        h.audit("supervisor.child.restarted", "collectors/x").len(),
        1
    );

    // Stopping the root stops the tree depth-first, each level in reverse order.
    h.shutdown().await;
    assert_eq!(
        h.rec.since(secs(20)),
        [w("y", What::Stop), w("x", What::Stop), w("a", What::Stop)]
    );
    for path in ["a", "collectors", "collectors/x", "collectors/y"] {
        assert_eq!(h.board(path).state, ActorState::Stopped, "{path}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_sub_supervisor_child_escalates_under_its_path() {
    let mut h = Harness::new().await;
    let x = Ctl::always(Mode::FailStart);
    let collectors = h.sub_supervisor("collectors", Strategy::OneForOne, vec![h.child("x", &x)]);
    h.spawn(Strategy::OneForOne, vec![collectors]).await;

    h.rec.until(secs(31)).await;
    let alerts = h.alerts();
    assert_eq!(alerts.len(), 1);
    assert!(
        matches!(&alerts[0], (at, Alert::Escalation { actor, failures: 4, .. })
            if *at == secs(30) && actor == "collectors/x"),
        "{alerts:?}"
    );
    assert!(h.board("collectors/x").escalated);
    assert_eq!(h.board("collectors").state, ActorState::Running);
}

// --- 11. control by tree path ------------------------------------------------------------------

async fn control(h: &Harness, verb: Verb, names: &[&str]) -> Result<(), ControlError> {
    let names = names.iter().map(|n| n.to_string()).collect();
    call!(h.sup(), |r| SupervisorMsg::Control(verb, names, r)).unwrap()
}

#[tokio::test(start_paused = true)]
async fn control_requests_reach_children_of_a_sub_supervisor_by_path() {
    let mut h = Harness::new().await;
    let collectors = h.sub_supervisor(
        "collectors",
        Strategy::OneForOne,
        vec![h.runner("x"), h.runner("y")],
    );
    h.spawn(Strategy::OneForOne, vec![h.runner("a"), collectors])
        .await;

    control(&h, Verb::Stop, &["collectors/*"]).await.unwrap();
    for (path, state) in [
        ("a", ActorState::Running),
        ("collectors", ActorState::Running),
        ("collectors/x", ActorState::Stopped),
        ("collectors/y", ActorState::Stopped),
    ] {
        assert_eq!(h.board(path).state, state, "{path}");
    }
    // A stopped child stays stopped.
    h.rec.until(secs(600)).await;
    assert_eq!(h.board("collectors/x").state, ActorState::Stopped);

    control(&h, Verb::Start, &["collectors/x"]).await.unwrap();
    assert_eq!(h.board("collectors/x").state, ActorState::Running);
    assert_eq!(h.board("collectors/y").state, ActorState::Stopped);
    control(&h, Verb::Restart, &["collectors/x", "a"])
        .await
        .unwrap();
    assert_eq!(h.rec.starts("x"), [secs(0), secs(600), secs(600)]);
    assert_eq!(h.rec.starts("a"), [secs(0), secs(600)]);

    let err = control(&h, Verb::Stop, &["collectors/zz"])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ControlError::UnknownChild {
            name: "zz".into(),
            supervisor: "collectors".into(),
            known: vec!["x".into(), "y".into()],
        }
    );
    let err = control(&h, Verb::Stop, &["a/x"]).await.unwrap_err();
    assert_eq!(err, ControlError::NotASupervisor { path: "a".into() });
    // A bad name anywhere in the request changes nothing.
    let err = control(&h, Verb::Stop, &["a", "nope"]).await.unwrap_err();
    assert!(matches!(err, ControlError::UnknownChild { .. }));
    assert_eq!(h.board("a").state, ActorState::Running);
}

#[tokio::test(start_paused = true)]
async fn children_can_be_added_and_removed_at_run_time() {
    let mut h = Harness::new().await;
    let collectors = h.sub_supervisor("collectors", Strategy::OneForOne, vec![h.runner("x")]);
    h.spawn(Strategy::OneForOne, vec![collectors]).await;
    let sub = call!(h.sup(), |r| SupervisorMsg::Supervisor(
        "collectors".into(),
        r
    ))
    .unwrap()
    .expect("collectors is a live supervisor");

    h.rec.until(secs(5)).await;
    call!(sub, |r| SupervisorMsg::Add(h.runner("y"), r))
        .unwrap()
        .unwrap();
    assert_eq!(h.board("collectors/y").state, ActorState::Running);
    assert_eq!(h.rec.starts("y"), [secs(5)]);
    let dup = call!(sub, |r| SupervisorMsg::Add(h.runner("y"), r)).unwrap();
    assert_eq!(dup, Err(ControlError::Exists { name: "y".into() }));

    call!(sub, |r| SupervisorMsg::Remove("x".into(), r))
        .unwrap()
        .unwrap();
    assert_eq!(
        h.rec.since(secs(5)),
        [w("y", What::Start), w("x", What::Stop)]
    );
    let names: Vec<_> = call!(sub, SupervisorMsg::Children)
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["y"]);
    assert!(
        h.board_has("collectors/x").is_none(),
        "a removed child leaves the status board"
    );
    let gone = call!(sub, |r| SupervisorMsg::Remove("x".into(), r)).unwrap();
    assert!(matches!(gone, Err(ControlError::UnknownChild { .. })));
    assert!(
        call!(h.sup(), |r| SupervisorMsg::Supervisor("nope".into(), r))
            .unwrap()
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn a_live_actor_is_found_by_its_tree_path() {
    let mut h = Harness::new().await;
    let collectors = h.sub_supervisor("collectors", Strategy::OneForOne, vec![h.runner("x")]);
    h.spawn(Strategy::OneForOne, vec![h.runner("a"), collectors])
        .await;
    let cell = |p: &str| {
        let sup = h.sup().clone();
        let p = p.to_string();
        async move { call!(sup, |r| SupervisorMsg::Cell(p, r)).unwrap() }
    };
    assert!(cell("a").await.is_some());
    assert!(cell("collectors").await.is_some());
    let x = cell("collectors/x").await.expect("collectors/x is live");
    assert!(cell("collectors/nope").await.is_none());
    assert!(cell("a/x").await.is_none(), "a is not a supervisor");
    // Killing it by its cell is a failure like any other: it is restarted after the backoff.
    x.kill();
    h.rec.until(secs(10)).await;
    assert_eq!(h.rec.starts("x"), [secs(0), secs(5)]);
    assert_eq!(h.board("collectors/x").failures, 1);
}

#[tokio::test(start_paused = true)]
async fn the_daemons_own_children_restart_alone_and_are_never_stopped_by_control() {
    let mut h = Harness::new().await;
    h.spawn(
        Strategy::OneForOne,
        vec![
            h.runner("a").essential(),
            h.runner("b").essential(),
            h.runner("c"),
        ],
    )
    .await;
    h.rec.until(secs(5)).await;

    // Refused before anything is done: `c`, named first, is not stopped either.
    let err = control(&h, Verb::Stop, &["c", "a"]).await.unwrap_err();
    assert_eq!(err, ControlError::Essential { path: "a".into() });
    let err = control(&h, Verb::Stop, &["*"]).await.unwrap_err();
    assert_eq!(err, ControlError::Essential { path: "a".into() });
    let err = control(&h, Verb::Restart, &["a", "b"]).await.unwrap_err();
    assert_eq!(
        err,
        ControlError::EssentialTogether {
            paths: vec!["a".into(), "b".into()]
        }
    );
    assert!(
        h.rec.since(secs(1)).is_empty(),
        "{:?}",
        h.rec.since(secs(1))
    );

    control(&h, Verb::Restart, &["a", "c"]).await.unwrap();
    assert_eq!(h.rec.starts("a"), [secs(0), secs(5)]);
    assert_eq!(h.rec.starts("c"), [secs(0), secs(5)]);
    control(&h, Verb::Stop, &["c"]).await.unwrap();
    for (path, state) in [
        ("a", ActorState::Running),
        ("b", ActorState::Running),
        ("c", ActorState::Stopped),
    ] {
        assert_eq!(h.board(path).state, state, "{path}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_manual_stop_outlives_a_restart_of_the_parent_until_a_manual_start() {
    let mut h = Harness::new().await;
    let collectors = h.sub_supervisor(
        "collectors",
        Strategy::OneForOne,
        vec![h.runner("x"), h.runner("y")],
    );
    h.spawn(Strategy::OneForOne, vec![collectors]).await;

    control(&h, Verb::Stop, &["collectors/x"]).await.unwrap();
    h.rec.until(secs(5)).await;
    control(&h, Verb::Restart, &["collectors"]).await.unwrap();
    assert_eq!(h.board("collectors").state, ActorState::Running);
    assert_eq!(h.board("collectors/x").state, ActorState::Stopped);
    assert_eq!(h.board("collectors/y").state, ActorState::Running);
    assert_eq!(h.rec.starts("x"), [secs(0)]);
    assert_eq!(h.rec.starts("y"), [secs(0), secs(5)]);
    // Nor does a stop of the whole group and a start of it bring the child back.
    control(&h, Verb::Stop, &["collectors"]).await.unwrap();
    control(&h, Verb::Start, &["collectors"]).await.unwrap();
    assert_eq!(h.board("collectors/x").state, ActorState::Stopped);
    assert_eq!(h.rec.starts("x"), [secs(0)]);

    control(&h, Verb::Start, &["collectors/x"]).await.unwrap();
    h.rec.until(secs(10)).await;
    control(&h, Verb::Restart, &["collectors"]).await.unwrap();
    assert_eq!(h.board("collectors/x").state, ActorState::Running);
    assert_eq!(h.rec.starts("x"), [secs(0), secs(5), secs(10)]);
}

// --- gate (a standby node's collectors) ----------------------------------------------------------

/// Lets the gate's watcher deliver its message and the supervisor act on it.
async fn settle(h: &Harness) {
    tokio::time::sleep(ms(1)).await;
    h.ping().await;
}

#[tokio::test(start_paused = true)]
async fn a_closed_gate_keeps_children_stopped_and_opening_it_starts_all_but_the_held() {
    let mut h = Harness::new().await;
    let (gate_tx, gate) = fushi_actors::supervisor::gate(false);
    h.spawn_gated(
        Strategy::OneForOne,
        vec![h.runner("a"), h.runner("b")],
        gate,
    )
    .await;
    assert_eq!(h.state("a").await, ActorState::Stopped);
    assert!(
        h.rec.starts("a").is_empty(),
        "nothing starts behind a closed gate"
    );

    gate_tx.set(true);
    settle(&h).await;
    assert_eq!(h.state("a").await, ActorState::Running);
    assert_eq!(h.state("b").await, ActorState::Running);

    // An operator stops b; the gate closes and opens again: b stays stopped, a comes back.
    h.stop(&["b"]).await;
    gate_tx.set(false);
    settle(&h).await;
    assert_eq!(h.state("a").await, ActorState::Stopped);
    gate_tx.set(true);
    settle(&h).await;
    assert_eq!(h.state("a").await, ActorState::Running);
    assert_eq!(
        h.state("b").await,
        ActorState::Stopped,
        "held by the operator"
    );
    assert_eq!(h.rec.starts("a").len(), 2);
    assert!(h.alerts().is_empty(), "a closed gate is no failure");
    assert_eq!(h.info("a").await.consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn a_failure_just_before_the_gate_closes_is_not_restarted_behind_it() {
    let mut h = Harness::new().await;
    let (gate_tx, gate) = fushi_actors::supervisor::gate(true);
    let a = Ctl::script([Mode::FailAfter(secs(1))], Mode::Run);
    h.spawn_gated(Strategy::OneForOne, vec![h.child("a", &a)], gate)
        .await;
    // a fails at 1 s and its restart is due at 6 s; the gate closes at 2 s.
    h.rec.until(secs(2)).await;
    gate_tx.set(false);
    h.rec.until(secs(20)).await;
    assert_eq!(
        h.rec.starts("a").len(),
        1,
        "no restart behind a closed gate"
    );
    assert_eq!(h.state("a").await, ActorState::Stopped);
    gate_tx.set(true);
    settle(&h).await;
    assert_eq!(h.state("a").await, ActorState::Running);
}
