//! systemd integration: sd_notify messages on a NOTIFY_SOCKET the test owns, and journald fields.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::util::*;

fn recv_until(sock: &UnixDatagram, want: &str, seen: &mut Vec<String>) {
    let mut buf = [0u8; 4096];
    wait_for(&format!("{want} on NOTIFY_SOCKET (seen: {seen:?})"), || {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        seen.iter().any(|m| m.lines().any(|l| l == want)).then_some(())
    });
}

#[test]
fn sd_notify_ready_status_watchdog_stopping() {
    let env = Env::new(&config("[[collector]]\nname = \"beat\"\nkind = \"heartbeat\"\n"));
    let sock_path = env.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut d = env.start_with(|c| {
        c.env("NOTIFY_SOCKET", &sock_path).env("WATCHDOG_USEC", "200000");
    });
    let mut seen = Vec::new();
    recv_until(&sock, "READY=1", &mut seen);
    let ready = seen.iter().find(|m| m.contains("READY=1")).unwrap();
    assert!(ready.contains("STATUS=health "), "{ready}");
    recv_until(&sock, "WATCHDOG=1", &mut seen);
    d.signal(nix::sys::signal::Signal::SIGTERM);
    recv_until(&sock, "STOPPING=1", &mut seen);
    assert!(d.wait_exit().success());
}
