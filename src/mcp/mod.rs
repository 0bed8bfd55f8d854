//! `gathm mcp`: an MCP server (Model Context Protocol, rmcp) over stdio;
//! `gathm serve` mounts the same handler at `/mcp` (`crate::serve::mcp`).
//!
//! - `schema`: manifest → `inputSchema`, call arguments → argv, annotations,
//!   the envelope's `outputSchema`;
//! - `server`: the transport-independent handler ([`Gathm`]).
//!
//! Over HTTP the same handler mounts with rmcp's streamable HTTP service
//! (`crate::serve::mcp`; README, "MCP").

pub mod schema;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use rmcp::ServiceExt;

pub use server::{Caller, Gathm, Host, Options};

use crate::config::{Context, env_parse};
use crate::error::{Error, Result};

/// Seconds between manifest checks for `tools/list_changed`
/// (`GATHM_MCP_POLL`, default 2).
pub fn poll_interval() -> Duration {
    let secs: f64 = env_parse("GATHM_MCP_POLL").unwrap_or(2.0);
    Duration::from_secs_f64(if secs.is_finite() && secs > 0.05 {
        secs
    } else {
        2.0
    })
}

/// Serve MCP on stdin/stdout until the client closes stdin.
pub fn serve(ctx: Context, role: &str, approve: Vec<String>) -> Result<i32> {
    crate::parsed::memoise();
    let opts = Options {
        role: role.to_string(),
        approve,
        poll: poll_interval(),
        host: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the MCP runtime: {e}")))?;
    let outcome = rt.block_on(async move {
        let handler = Gathm::new(Arc::new(ctx), opts);
        let service = handler
            .clone()
            .serve(rmcp::transport::stdio_pipes())
            .await
            .map_err(|e| Error::Internal(format!("MCP session did not start: {e}")))?;
        let ended = service
            .waiting()
            .await
            .map_err(|e| Error::Internal(format!("MCP session ended badly: {e}")));
        // The client is gone: kill what still runs (TERM, grace, KILL) and
        // wait for the runs to finish their bookkeeping.
        if handler.cancel_all() > 0 {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while handler.running() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        ended?;
        Ok::<i32, Error>(0)
    });
    rt.shutdown_timeout(Duration::from_millis(200));
    outcome
}
