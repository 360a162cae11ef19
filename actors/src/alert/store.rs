//! The alert outbox on disk (`<data_dir>/alerts/outbox.jsonl`): every decision and every message is appended and fsynced before anything is delivered, so a `kill -9` loses no accepted alert and repeats no delivered one.
//!
//! The file is a log of commits, one JSON line each, so that one `write` + `fsync` makes a
//! whole step durable or none of it: noise control's state after the step, the messages the
//! step made (with the channels still to take each), and the deliveries that ended. Folding
//! the lines gives the state to resume from and the deliveries still owed. A torn last line
//! is a write the crash cut short, whose step never happened; a bad line elsewhere is skipped
//! and counted. Opening rewrites the file as one commit of what is still owed (atomically),
//! and so does a commit that finds the file past [`COMPACT_AT`].

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::message::{Item, Message};
use super::noise::Noise;
use crate::faults::{check, Op};

/// The file's name in `<data_dir>/alerts/`.
pub const FILE: &str = "outbox.jsonl";

/// Past this size a commit rewrites the file as what is still owed.
pub const COMPACT_AT: u64 = 256 * 1024;

/// Noise control's state and the group still gathering, as of one commit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The next alert or message number.
    pub next_id: u64,
    pub noise: Noise,
    /// Items waiting for their group to close (`group_wait` after the first).
    pub pending: Vec<Item>,
    /// Noise control's clock at this commit (ms): the next incarnation's never starts earlier.
    #[serde(default)]
    pub clock_ms: u64,
}

/// A message and the channels that have yet to take it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Owed {
    pub message: Message,
    pub channels: Vec<String>,
}

/// A delivery that ended, either way: the channel owes the message no more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub message: u64,
    pub channel: String,
}

/// One step, made durable as one line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Snapshot>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owed: Vec<Owed>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<Done>,
}

impl Commit {
    pub fn is_empty(&self) -> bool {
        self.state.is_none() && self.owed.is_empty() && self.done.is_empty()
    }
}

/// What the file said: the state to resume from and the deliveries still owed, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resumed {
    pub state: Snapshot,
    pub owed: Vec<Owed>,
    /// Lines that did not parse and were not the last one.
    pub bad_lines: usize,
}

impl Resumed {
    fn apply(&mut self, c: Commit) {
        if let Some(s) = c.state {
            self.state = s;
        }
        self.owed.extend(c.owed);
        for d in c.done {
            if let Some(o) = self.owed.iter_mut().find(|o| o.message.id == d.message) {
                o.channels.retain(|ch| *ch != d.channel);
            }
        }
        self.owed.retain(|o| !o.channels.is_empty());
    }

    /// The one commit that stands for everything folded so far.
    fn as_commit(&self) -> Commit {
        Commit {
            state: Some(self.state.clone()),
            owed: self.owed.clone(),
            done: Vec::new(),
        }
    }
}

/// The open outbox file.
pub struct Store {
    path: PathBuf,
    file: File,
    bytes: u64,
    /// The size the last compaction left: the next one waits for twice that (or
    /// [`COMPACT_AT`]), so that a large backlog owed is not rewritten at every commit.
    compacted: u64,
    /// Everything committed, folded: what a compaction writes.
    folded: Resumed,
    /// A failure left the file in a state this handle cannot append to safely (a failed
    /// append that could not be cut back, a compaction renamed but not reopened): every
    /// commit fails until the next incarnation opens the file afresh.
    broken: Option<String>,
}

fn line(c: &Commit) -> io::Result<Vec<u8>> {
    let mut v = serde_json::to_vec(c).map_err(io::Error::other)?;
    v.push(b'\n');
    Ok(v)
}

fn read(path: &Path) -> io::Result<Resumed> {
    let mut r = Resumed::default();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(r),
        Err(e) => return Err(e),
    };
    let lines: Vec<Vec<u8>> = BufReader::new(file)
        .split(b'\n')
        .collect::<io::Result<_>>()?;
    let last = lines.len().saturating_sub(1);
    for (i, l) in lines.into_iter().enumerate() {
        if l.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Commit>(&l) {
            Ok(c) => r.apply(c),
            Err(_) if i == last => {} // a torn append: its step never completed
            Err(_) => r.bad_lines += 1,
        }
    }
    Ok(r)
}

impl Store {
    /// Opens `<dir>/outbox.jsonl` (creating `dir`), resumes from it and rewrites it compacted.
    pub fn open(dir: &Path) -> io::Result<(Store, Resumed)> {
        check(Op::Open, dir)?;
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE);
        let resumed = read(&path)?;
        let file = match Self::rewrite(&path, &resumed.as_commit()) {
            Ok(f) => f,
            // A full disk may refuse the rewrite's temp file; the file as it is still serves,
            // once a torn last line is cut off (an append after it would run on into it).
            Err(e) => {
                tracing::warn!(actor = "alert", event = crate::events::ALERT_OUTBOX_DAMAGED, error = %e,
                    "cannot compact the alert outbox; appending to it as it is");
                Self::reopen_whole(&path)?
            }
        };
        let bytes = file.metadata()?.len();
        let store = Store {
            file,
            bytes,
            compacted: bytes,
            path,
            folded: resumed.clone(),
            broken: None,
        };
        Ok((store, resumed))
    }

    /// The file opened for appending after its last newline, a torn tail cut off.
    fn reopen_whole(path: &Path) -> io::Result<File> {
        check(Op::Open, path)?;
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let text = std::fs::read(path)?;
        let whole = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if whole < text.len() {
            file.set_len(whole as u64)?;
        }
        Ok(file)
    }

    /// Replaces the file by `c` alone (temp file, fsync, rename, directory fsync) and opens
    /// the new file for appending.
    fn rewrite(path: &Path, c: &Commit) -> io::Result<File> {
        crate::fs::write_atomic(path, &line(c)?)?;
        check(Op::Open, path)?;
        OpenOptions::new().append(true).open(path)
    }

    /// Appends `c` and fsyncs it: once this returns Ok, the step survives a `kill -9`. When
    /// it returns an error the step did not happen, on disk either: a line written but not
    /// fsynced is cut off again, so a restart does not find a step its actor gave up on.
    pub fn commit(&mut self, c: Commit) -> io::Result<()> {
        if let Some(why) = &self.broken {
            return Err(io::Error::other(format!(
                "the outbox file is unusable: {why}"
            )));
        }
        if c.is_empty() {
            return Ok(());
        }
        let bytes = line(&c)?;
        if let Err(e) = self.append(&bytes) {
            if let Err(cut) = self.file.set_len(self.bytes) {
                self.broken = Some(format!(
                    "a failed append ({e}) could not be cut off ({cut})"
                ));
            }
            return Err(e);
        }
        self.bytes += bytes.len() as u64;
        self.folded.apply(c);
        if self.bytes > COMPACT_AT.max(2 * self.compacted) {
            // The step is durable already: a failed compaction is no failed commit.
            match Self::rewrite(&self.path, &self.folded.as_commit()) {
                Ok(f) => {
                    self.file = f;
                    self.bytes = self.file.metadata()?.len();
                    self.compacted = self.bytes;
                }
                Err(e) if self.path.exists() && crate::fs::same_file(&self.file, &self.path) => {
                    tracing::warn!(actor = "alert", event = crate::events::ALERT_OUTBOX_DAMAGED, error = %e,
                        "cannot compact the alert outbox; appending to it as it is");
                    self.compacted = self.bytes;
                }
                Err(e) => {
                    self.broken = Some(format!("compacted but not reopened: {e}"));
                }
            }
        }
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        check(Op::Write, &self.path)?;
        self.file.write_all(bytes)?;
        check(Op::Fsync, &self.path)?;
        self.file.sync_data()
    }

    /// When the oldest message still owed was made (ms since the epoch).
    pub fn oldest_owed_ms(&self) -> Option<u64> {
        self.folded.owed.iter().map(|o| o.message.at_ms).min()
    }

    /// Deliveries still owed, per channel: what status shows as the outbox's depth.
    pub fn owed_by_channel(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for o in &self.folded.owed {
            for ch in &o.channels {
                *out.entry(ch.clone()).or_insert(0) += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::noise::Note;
    use crate::alert::types::Alert;

    fn owed(id: u64, channels: &[&str]) -> Owed {
        Owed {
            message: Message {
                id,
                at_ms: 0,
                items: vec![Item {
                    id,
                    at_ms: 0,
                    alert: Alert::DaemonRecovered { why: "x".into() },
                    note: Note::Plain {
                        duration_ms: None,
                        suppressed: 0,
                    },
                }],
            },
            channels: channels.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn what_is_owed_survives_reopening_and_what_was_done_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, r) = Store::open(dir.path()).unwrap();
        assert_eq!(r, Resumed::default());
        s.commit(Commit {
            state: Some(Snapshot {
                next_id: 3,
                ..Default::default()
            }),
            owed: vec![owed(1, &["webhook", "file"]), owed(2, &["webhook"])],
            done: vec![],
        })
        .unwrap();
        s.commit(Commit {
            done: vec![Done {
                message: 1,
                channel: "webhook".into(),
            }],
            ..Default::default()
        })
        .unwrap();
        drop(s);
        let (s, r) = Store::open(dir.path()).unwrap();
        assert_eq!(r.state.next_id, 3);
        assert_eq!(r.owed, vec![owed(1, &["file"]), owed(2, &["webhook"])]);
        assert_eq!(
            s.owed_by_channel(),
            BTreeMap::from([("file".into(), 1), ("webhook".into(), 1)])
        );
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(text.lines().count(), 1, "opening compacts: {text}");
    }

    #[test]
    fn a_torn_last_line_is_a_step_that_never_happened_and_a_bad_middle_line_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let good = String::from_utf8(line(&owed(1, &["w"]).into_commit()).unwrap()).unwrap();
        std::fs::write(&path, format!("{good}garbage\n{good}{{\"owed\":[{{\"mess")).unwrap();
        let (_, r) = Store::open(dir.path()).unwrap();
        assert_eq!(r.bad_lines, 1);
        assert_eq!(r.owed.len(), 2, "both good lines count: {r:?}");
    }

    #[test]
    fn a_failing_fsync_is_an_error_and_the_step_is_not_folded() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Store::open(dir.path()).unwrap();
        crate::faults::arm(Op::Fsync, dir.path(), 0, 1, libc_eio());
        let e = s.commit(owed(1, &["w"]).into_commit());
        crate::faults::disarm(dir.path());
        assert!(e.is_err());
        assert!(s.owed_by_channel().is_empty());
        s.commit(owed(2, &["w"]).into_commit()).unwrap();
        drop(s);
        let (_, r) = Store::open(dir.path()).unwrap();
        let ids: Vec<u64> = r.owed.iter().map(|o| o.message.id).collect();
        assert_eq!(ids, [2], "the failed step is not on disk either");
    }

    fn libc_eio() -> i32 {
        5
    }

    impl Owed {
        fn into_commit(self) -> Commit {
            Commit {
                owed: vec![self],
                ..Default::default()
            }
        }
    }

    /// One step of the model test: owe message `id` to some channels, or end a delivery.
    #[derive(Debug, Clone)]
    enum Step {
        Owe(Vec<bool>),
        Done(usize, usize),
    }

    const CHANNELS: [&str; 3] = ["webhook", "command", "file"];

    /// Per message, the channels that still owe it: the model test's oracle.
    type Owing = BTreeMap<u64, Vec<String>>;

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::collection::vec(any::<bool>(), 3).prop_map(Step::Owe),
            (0..20usize, 0..3usize).prop_map(|(m, c)| Step::Done(m, c)),
        ]
    }

    proptest::proptest! {
        /// The real store, cut by a crash at any byte of any append: reopened, it owes exactly
        /// what the commits before the cut owed (the torn one never happened), each once.
        #[test]
        fn a_crash_at_any_byte_of_any_append_resumes_what_the_commits_before_it_owed(
            steps in proptest::collection::vec(step(), 1..25),
            cut_at in 0usize..25,
            cut_frac in 0.0f64..1.0,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (mut s, _) = Store::open(dir.path()).unwrap();
            let path = dir.path().join(FILE);
            // The oracle: per message, the channels that still owe it, after each commit.
            let mut model = Owing::new();
            let mut after: Vec<(Vec<u8>, Owing)> =
                vec![(std::fs::read(&path).unwrap(), model.clone())];
            for (i, st) in steps.iter().enumerate() {
                let c = match st {
                    Step::Owe(pick) => {
                        let chans: Vec<String> = CHANNELS.iter().zip(pick)
                            .filter(|(_, p)| **p).map(|(c, _)| c.to_string()).collect();
                        if chans.is_empty() { continue; }
                        model.insert(i as u64, chans.clone());
                        Commit {
                            state: Some(Snapshot { next_id: i as u64 + 1, ..Default::default() }),
                            owed: vec![Owed { channels: chans, ..owed(i as u64, &[]) }],
                            done: vec![],
                        }
                    }
                    Step::Done(m, ch) => {
                        let Some((&id, _)) = model.iter().nth(*m % model.len().max(1)) else { continue };
                        let channel = CHANNELS[*ch].to_string();
                        if let Some(v) = model.get_mut(&id) { v.retain(|c| *c != channel); }
                        model.retain(|_, v| !v.is_empty());
                        Commit { done: vec![Done { message: id, channel }], ..Default::default() }
                    }
                };
                s.commit(c).unwrap();
                after.push((std::fs::read(&path).unwrap(), model.clone()));
            }
            drop(s);
            if after.len() < 2 {
                return Ok(()); // every step was a no-op: nothing was appended to cut
            }
            let k = 1 + cut_at % (after.len() - 1);
            let (before, owed_before) = &after[k - 1];
            let (full, owed_after) = &after[k];
            // A cut inside append k: the bytes before it, then part of its line.
            let len = before.len() + ((full.len() - before.len()) as f64 * cut_frac) as usize;
            let crashed = tempfile::tempdir().unwrap();
            std::fs::write(crashed.path().join(FILE), &full[..len]).unwrap();
            let (_, r) = Store::open(crashed.path()).unwrap();
            let got: Owing =
                r.owed.iter().map(|o| (o.message.id, o.channels.clone())).collect();
            // A line cut only of its newline is whole: the step reached the disk (and opening
            // rewrites the file, so no later append runs on into it).
            let expected = if len + 1 >= full.len() { owed_after } else { owed_before };
            proptest::prop_assert_eq!(&got, expected);
            proptest::prop_assert_eq!(r.bad_lines, 0);
            proptest::prop_assert_eq!(r.owed.len(), got.len(), "a message owed twice");
        }
    }

    #[test]
    fn a_big_file_is_compacted_to_what_is_owed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Store::open(dir.path()).unwrap();
        for id in 0..2000 {
            s.commit(owed(id, &["w"]).into_commit()).unwrap();
            s.commit(Commit {
                done: vec![Done {
                    message: id,
                    channel: "w".into(),
                }],
                ..Default::default()
            })
            .unwrap();
        }
        let len = std::fs::metadata(dir.path().join(FILE)).unwrap().len();
        assert!(len <= COMPACT_AT, "{len} bytes");
        drop(s);
        let (_, r) = Store::open(dir.path()).unwrap();
        assert!(r.owed.is_empty());
    }
}
