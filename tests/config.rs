//! Config errors at start and on reload: exit 78 naming the line, last-good fallback, SIGHUP keeping the running config.

use nix::sys::signal::Signal;

use crate::util::*;

const GOOD: &str = r#"[[collector]]
name = "beat"
kind = "heartbeat"
every = "1h"
"#;

#[test]
fn broken_config_exits_78_naming_file_line_and_key() {
    let env = Env::new("[node]\ndata_dir = \"data\"\n[supervisor]\nbackof = [\"5s\"]\n");
    let out = env.command().output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("supervisor.toml:4:"), "{err}");
    assert!(err.contains("backof"), "{err}");

    let env = Env::new("[[collector]]\nname = \"x\"\nkind = \"command\"\n");
    let out = env.command().output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("supervisor.toml:1:1: collector[0].argv"),
        "{err}"
    );
}

#[test]
fn missing_config_exits_78_and_says_what_to_do() {
    let env = Env::new("");
    std::fs::remove_file(env.config()).unwrap();
    let out = env.command().output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read config file") && err.contains("-c FILE"),
        "{err}"
    );
}

#[test]
fn broken_config_with_a_last_good_copy_runs_on_it_with_red_health() {
    let env = Env::new(&config(GOOD));
    let mut d = env.start();
    d.wait_audit("supervisor.child.started", "collectors", 1);
    assert!(d.terminate().success());
    assert!(env.data().join("config.last-good.toml").exists());

    env.write_config(&config(
        "[[collector]]\nname = \"beat\"\nkind = \"heartbeat\"\nevery = \"often\"\n",
    ));
    let mut d = env.start();
    d.wait_audit("supervisor.child.started", "collectors/beat", 2);
    let status = wait_for("status with config errors", || {
        let s = env.status()?;
        (!s["config"]["errors"].as_array()?.is_empty()).then_some(s)
    });
    assert_eq!(status["health"], "red");
    assert!(
        status["config"]["errors"][0]
            .as_str()
            .unwrap()
            .contains(":11:"),
        "{status}"
    );
    assert!(d.terminate().success());
}

#[test]
fn bad_sighup_reload_keeps_the_running_config_and_turns_health_red() {
    let env = Env::new(&config(GOOD));
    let mut d = env.start();
    d.wait_audit("supervisor.child.started", "collectors/beat", 1);
    wait_for("green health", || {
        (env.status()?["health"] == "green").then_some(())
    });

    env.write_config("this is not toml");
    d.signal(Signal::SIGHUP);
    let audit = d.wait_audit("config.reload.failed", "", 1);
    assert!(
        events(&audit, "config.reload.failed", "")[0]["payload"]["error"]
            .as_str()
            .unwrap()
            .contains("supervisor.toml:1:")
    );
    let status = wait_for("red health", || {
        let s = env.status()?;
        (s["health"] == "red").then_some(s)
    });
    let beat = status["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "collectors/beat")
        .unwrap()
        .clone();
    assert_eq!(
        beat["state"], "running",
        "the running config stays in force"
    );

    env.write_config(&config(GOOD));
    d.signal(Signal::SIGHUP);
    d.wait_audit("config.reload.ok", "", 1);
    wait_for("green health again", || {
        (env.status()?["health"] == "green").then_some(())
    });
    assert!(d.terminate().success());
}
