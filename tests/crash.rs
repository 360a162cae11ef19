//! `kill -9` at random moments: status.json always parses and its counters keep growing.

use rand::Rng;
use std::time::Duration;

use crate::util::*;

#[test]
fn kill9_at_random_moments_never_corrupts_status_and_counters_grow() {
    let env = Env::new(&config(
        r#"[[collector]]
name = "flaky"
kind = "command"
argv = ["false"]
backoff = ["100ms"]
jitter = "0s"
escalate_after = 1000
"#,
    ));
    let mut rng = rand::rng();
    let (mut last_recovered, mut last_restarts, mut last_failures) = (0, 0, 0);
    let runs = 50;
    for i in 0..runs {
        // A kill within milliseconds of start may lose that run's audit lines: count afresh.
        let audit = env.audit();
        let started = events(&audit, "daemon.started", "").len();
        let restarted = events(&audit, "supervisor.child.restarted", "collectors/flaky").len();
        let mut d = env.start();
        // Half the kills land during start-up, half once the tree is busy restarting: of those,
        // every other one after this run's first restart, a backoff step (100 ms) after its
        // first failure, so that the restart counter moves between kills too.
        if i % 4 == 1 {
            d.wait_audit("daemon.started", "", started + 1);
        } else if i % 4 == 3 {
            d.wait_audit(
                "supervisor.child.restarted",
                "collectors/flaky",
                restarted + 1,
            );
        }
        // The kill instant is what is randomised here; nothing waits on this delay.
        std::thread::sleep(Duration::from_micros(rng.random_range(0..80_000)));
        d.kill9();
        let Some(status) = env.status() else {
            assert!(i < 3, "status.json missing after run {i}");
            continue;
        };
        let recovered = status["daemon_recovered"].as_u64().unwrap();
        let flaky = status["actors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "collectors/flaky");
        let restarts = flaky.map_or(0, |a| a["restarts"].as_u64().unwrap());
        let failures = flaky.map_or(0, |a| a["failures"].as_u64().unwrap());
        assert!(
            recovered >= last_recovered,
            "daemon_recovered went back: {recovered} < {last_recovered}"
        );
        assert!(
            restarts >= last_restarts,
            "restarts went back: {restarts} < {last_restarts}"
        );
        assert!(
            failures >= last_failures,
            "failures went back: {failures} < {last_failures}"
        );
        (last_recovered, last_restarts, last_failures) = (recovered, restarts, failures);
    }
    // A final clean run sees every earlier unclean end.
    let mut d = env.start();
    d.wait_audit("supervisor.child.restarted", "collectors/flaky", 1);
    let status = wait_for("status.json to show the restart", || {
        let s = env.status()?;
        let flaky = s["actors"]
            .as_array()?
            .iter()
            .find(|a| a["name"] == "collectors/flaky")?
            .clone();
        (flaky["restarts"].as_u64()? > last_restarts).then_some(s)
    });
    assert!(d.terminate().success());
    let recovered = status["daemon_recovered"].as_u64().unwrap();
    assert!(
        recovered > last_recovered,
        "the last kill was not counted: {recovered}"
    );
    assert!(
        recovered >= 25,
        "most of the {runs} kills must count as recovered crashes, got {recovered}"
    );
    // The audit event is made durable before the count is: never fewer events than counted.
    assert!(events(&env.audit(), "daemon.recovered", "").len() as u64 >= recovered);
}
