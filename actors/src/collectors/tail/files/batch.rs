//! Reading a followed file's lines into a batch of records, marking a batch durable, and after a crash mapping the durable part of the batch in flight back to an offset.

use std::io::{self, BufReader};
use tokio::time::Instant;

use super::super::checkpoint::Pending;
use super::super::identity::{self, Sample};
use super::super::lines::{next_line, to_record, At, READ_BUFFER};
use super::{Files, RECENT};
use crate::events;
use crate::records::Record;

/// Lines in one batch at most.
pub const BATCH_LINES: usize = 16 * 1024;

/// A batch of records read from one file, on its way to the journal.
pub struct Batch {
    pub pending: Pending,
    pub records: Vec<Record>,
    /// Lines of the batch quarantined.
    pub rejected: u64,
    /// The sample before the batch's end, taken as it was read: what the file must still hold
    /// there for reading to go on from it.
    pub end_sample: Sample,
}

impl Files {
    /// The next batch: from a renamed or vanished file first (oldest first), then from the
    /// others in turn. None when no file has a complete line to read.
    pub fn next_batch(&mut self, now: Instant) -> io::Result<Option<Batch>> {
        let mut order: Vec<usize> = (0..self.followed.len()).collect();
        let last = self.last_read;
        order.sort_by_key(|&i| {
            let f = &self.followed[i];
            (!f.moved, f.order <= last && !f.moved, f.order)
        });
        for i in order {
            if self.followed[i].copy_of.is_some() {
                continue;
            }
            // Unchanged since the last look and nothing to read: one fstat, no reads. (A file
            // rewritten to the very same size is caught by the scan's full check, which comes
            // every `glob_interval`; until then there is nothing to read from it anyway.)
            let size = self.followed[i].file.metadata()?.len();
            let f = &self.followed[i];
            let idle = now.saturating_duration_since(f.changed) >= self.opts.partial_after;
            if size == f.size
                && f.until.is_none()
                && (size <= f.offset || (f.held_at == Some(size) && !idle))
            {
                if f.gone_since.is_none()
                    && size <= f.offset
                    && now.saturating_duration_since(f.changed) >= self.opts.rotate_wait
                {
                    self.followed[i].moved = false;
                }
                continue;
            }
            self.check(i, now)?;
            if self.followed[i].until.is_some() {
                continue;
            }
            let f = &self.followed[i];
            if f.size <= f.offset {
                // Read to its end: a renamed file that is not growing no longer goes first.
                if f.gone_since.is_none()
                    && now.saturating_duration_since(f.changed) >= self.opts.rotate_wait
                {
                    self.followed[i].moved = false;
                }
                continue;
            }
            if let Some(b) = self.read(i, now)? {
                self.last_read = self.followed[i].order;
                return Ok(Some(b));
            }
        }
        Ok(None)
    }

    fn read(&mut self, i: usize, now: Instant) -> io::Result<Option<Batch>> {
        let opts = &self.opts;
        let f = &self.followed[i];
        let idle = now.saturating_duration_since(f.changed) >= opts.partial_after;
        if f.held_at == Some(f.size) && !idle {
            return Ok(None);
        }
        let mut r = BufReader::with_capacity(
            READ_BUFFER,
            At {
                file: &f.file,
                pos: f.offset,
                end: f.size,
            },
        );
        let mut end = f.offset;
        let mut records = Vec::new();
        let (mut bytes, mut stream_records, mut rejected, mut partial) = (0u64, 0u64, 0u64, false);
        while records.len() < BATCH_LINES && bytes < opts.batch_bytes as u64 {
            let Some(l) = next_line(&mut r, opts.max_record_bytes)? else {
                break;
            };
            if !l.terminated {
                if !idle {
                    break;
                }
                partial = true;
                tracing::info!(actor = opts.collector.as_str(), event = events::COLLECTOR_TAIL_PARTIAL,
                    path = %f.path.display(), offset = end, bytes = l.bytes,
                    "a last line without its newline is kept as it is, flagged partial, after partial_after");
            }
            let (mut record, problem) = to_record(
                &opts.collector,
                &opts.stream,
                l.line,
                partial,
                opts.max_record_bytes,
            );
            if let Some(reason) = problem {
                tracing::warn!(actor = opts.collector.as_str(), event = events::COLLECTOR_QUARANTINE,
                    path = %f.path.display(), offset = end, reason = reason.as_str(), "line quarantined");
                // Where the line is, so that its very bytes (which an over-long or non-UTF-8
                // line cannot carry here) can be looked at.
                record.data["file"] = f.path.display().to_string().into();
                record.data["offset"] = end.into();
                rejected += 1;
            } else {
                stream_records += 1;
            }
            records.push(record);
            end += l.bytes;
            bytes += l.bytes;
            if partial {
                break;
            }
        }
        if records.is_empty() {
            let size = f.size;
            self.followed[i].held_at = Some(size);
            return Ok(None);
        }
        let end_sample = identity::sample(&f.file, end)?;
        Ok(Some(Batch {
            end_sample,
            pending: Pending {
                dev: f.dev,
                ino: f.ino,
                start: f.offset,
                end,
                records: stream_records,
                partial,
            },
            records,
            rejected,
        }))
    }

    /// The batch is durable: its file is read up to its end.
    pub fn commit(&mut self, p: &Pending, end_sample: Sample) -> io::Result<()> {
        let Some(i) = self.find((p.dev, p.ino)) else {
            return Ok(());
        };
        let f = &mut self.followed[i];
        if f.offset == p.start {
            f.offset = p.end;
            // As read, not as the file is now: were it truncated since, the next check sees.
            f.sample = end_sample;
            f.recent.push((p.end, f.sample));
            if f.recent.len() > RECENT {
                f.recent.remove(0);
            }
            self.dirty = true;
        }
        Ok(())
    }

    /// After a crash, `durable` records of the stream from the pending batch `p` reached the
    /// journal: its file is read on right after the last of them. The lines are read again
    /// and told apart as they were when the batch was made, so the count maps to an offset.
    pub fn resume(&mut self, p: &Pending, durable: u64) -> io::Result<Option<u64>> {
        let Some(i) = self
            .continued
            .get(&(p.dev, p.ino))
            .and_then(|&key| self.find(key))
        else {
            return Ok(None);
        };
        let opts = &self.opts;
        let f = &self.followed[i];
        if f.offset != p.start || durable == 0 {
            return Ok(None);
        }
        let mut r = BufReader::with_capacity(
            READ_BUFFER,
            At {
                file: &f.file,
                pos: p.start,
                end: p.end.min(f.size),
            },
        );
        let (mut at, mut seen) = (p.start, 0u64);
        while seen < durable {
            let Some(l) = next_line(&mut r, opts.max_record_bytes)? else {
                break;
            };
            let partial = !l.terminated && p.partial;
            if !l.terminated && !partial {
                break;
            }
            let (record, _) = to_record(
                &opts.collector,
                &opts.stream,
                l.line,
                partial,
                opts.max_record_bytes,
            );
            at += l.bytes;
            if record.stream == opts.stream {
                seen += 1;
            }
        }
        let f = &mut self.followed[i];
        f.offset = at;
        f.sample = identity::sample(&f.file, at)?;
        f.recent.push((at, f.sample));
        self.dirty = true;
        Ok(Some(at))
    }
}
