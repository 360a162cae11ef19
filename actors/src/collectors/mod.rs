//! Collectors: the actors that produce records, one per `[[collector]]`, children of the `collectors` supervisor.

pub mod command;
pub mod heartbeat;
pub mod http;
pub mod listen;
pub mod tail;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Reads one `\n`-terminated line of at most `max` bytes; a longer line is consumed and reported
/// as `Err(length)` so one bad line never grows memory without bound.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Option<Result<Vec<u8>, usize>>> {
    let mut line = Vec::new();
    let mut len = 0usize;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(match len {
                0 => None,
                n if n > max => Some(Err(n)),
                _ => Some(Ok(line)),
            });
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], i + 1),
            None => (buf, buf.len()),
        };
        len += chunk.len();
        if len <= max {
            line.extend_from_slice(chunk);
        } else {
            line.clear();
        }
        let found_newline = done != chunk.len();
        r.consume(done);
        if found_newline {
            return Ok(Some(if len > max { Err(len) } else { Ok(line) }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read_line;

    #[tokio::test]
    async fn bounded_lines() {
        let input: &[u8] = b"short\nthis-line-is-too-long\n\nlast-no-newline";
        let mut r = tokio::io::BufReader::with_capacity(4, input);
        let mut got = Vec::new();
        while let Some(l) = read_line(&mut r, 10).await.unwrap() {
            got.push(l);
        }
        assert_eq!(
            got,
            vec![Ok(b"short".to_vec()), Err(21), Ok(Vec::new()), Err(15)]
        );
    }
}
