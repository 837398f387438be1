//! One client connection: read, parse every complete command, run them, write all replies
//! at once (pipelining), repeat.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use strata_resp::{Command, Frame, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::commands::{Ctx, Session, dispatch, transactions_unwatch, with_args};
use crate::state::{ClientInfo, Shared};

/// Serves `stream` until the client leaves, breaks the protocol, or the server shuts down
/// (then the commands already received are answered first).
pub(crate) async fn serve(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let id = shared
        .next_client_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let authenticated = shared.runtime.read().requirepass.is_none();
    let info = Arc::new(ClientInfo {
        addr,
        name: parking_lot::Mutex::new(None),
        connected: Instant::now(),
        last_command: AtomicUsize::new(usize::MAX),
    });
    shared.clients.lock().insert(id, info.clone());
    let mut session = Session::new(id, authenticated, info);
    let _ = stream.set_nodelay(true);
    let mut input = BytesMut::with_capacity(16 << 10);
    let mut output = Vec::with_capacity(16 << 10);
    let mut command = Command::default();
    'conn: loop {
        let limits = Limits {
            max_bulk_len: shared.runtime.read().max_value_size as usize,
            authenticated: session.authenticated,
            ..Limits::default()
        };
        let mut close = false;
        let batch = Instant::now();
        // Commands run where they lie in `input`; the bytes they took are dropped at the end.
        let mut done = 0;
        loop {
            match command.parse(&input[done..], &limits) {
                Ok(true) => {
                    let frame = &input[done..done + command.frame_len()];
                    done += command.frame_len();
                    if command.arg_count() == 0 {
                        continue;
                    }
                    let mut ctx = Ctx {
                        shared: &shared,
                        session: &mut session,
                    };
                    let reply = with_args(
                        command.arg_count(),
                        |i| command.arg(frame, i),
                        |args| dispatch(&mut ctx, args),
                    );
                    reply.encode(session.protocol, &mut output);
                    if session.quit {
                        close = true;
                        break;
                    }
                    // Authentication changes the limits for what follows.
                    if session.authenticated != limits.authenticated {
                        break;
                    }
                }
                Ok(false) => break,
                Err(e) => {
                    // Like Redis: reply with the protocol error, then close.
                    Frame::error(format!("ERR {e}")).encode(session.protocol, &mut output);
                    close = true;
                    break;
                }
            }
        }
        input.advance(done);
        session.stats.finish_batch(batch.elapsed());
        shared.stats.absorb(&mut session.stats);
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                break;
            }
            output.clear();
        }
        if close || *shutdown.borrow() {
            break;
        }
        if !input.is_empty() && session.authenticated != limits.authenticated {
            continue;
        }
        tokio::select! {
            read = stream.read_buf(&mut input) => {
                match read {
                    Ok(0) | Err(_) => break 'conn,
                    Ok(_) => {}
                }
            }
            _ = shutdown.changed() => break 'conn,
        }
    }
    let mut ctx = Ctx {
        shared: &shared,
        session: &mut session,
    };
    transactions_unwatch(&mut ctx);
    shared.clients.lock().remove(&id);
}
