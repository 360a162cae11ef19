//! Recovery's view of a segment's bytes: the valid frames in it and the damaged stretches between them, and a copy group a crash tore.

use super::frame::*;

/// The frames of one segment's bytes, with the damage between them.
pub(super) struct Scan<'a> {
    pub(super) frames: Vec<(u64, usize, FrameView<'a>)>,
    /// (offset, length) of stretches that are not frames.
    pub(super) damage: Vec<(u64, u64)>,
}

pub(super) fn scan(buf: &[u8]) -> Scan<'_> {
    let mut frames = Vec::new();
    let mut damage = Vec::new();
    let mut off = 0usize;
    while off < buf.len() {
        if let Some((rec, n)) = decode_frame(&buf[off..]) {
            frames.push((off as u64, n, rec));
            off += n;
            continue;
        }
        // Resynchronise on the next magic that starts a valid frame.
        let start = off;
        let mut next = None;
        let mut probe = off + 1;
        while let Some(i) = buf[probe..]
            .windows(4)
            .position(|w| w == MAGIC || w == MAGIC_COPY)
        {
            let at = probe + i;
            if decode_frame(&buf[at..]).is_some() {
                next = Some(at);
                break;
            }
            probe = at + 1;
        }
        let end = next.unwrap_or(buf.len());
        damage.push((start as u64, (end - start) as u64));
        off = end;
    }
    Scan { frames, damage }
}

/// Where a group of copies at the end of `frames` begins, if the group is incomplete (its last
/// frame expects more of it).
pub(super) fn torn_copy_group(frames: &[(u64, usize, FrameView)]) -> Option<usize> {
    let (_, _, last) = frames.last()?;
    if last.copy_of?.left == 0 {
        return None;
    }
    // Walk back over the group: each earlier copy expects one more after it.
    let mut start = frames.len() - 1;
    while start > 0 {
        let here = frames[start].2.copy_of.map_or(0, |c| c.left);
        match frames[start - 1].2.copy_of {
            Some(c) if c.left == here + 1 => start -= 1,
            _ => break,
        }
    }
    Some(start)
}
