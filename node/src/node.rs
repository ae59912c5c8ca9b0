//! A running node: one owner for the library, its network and its HTTP server.
//!
//! [`Node::spawn`] starts the parts over an opened [`Library`] and gives back a
//! [`NodeHandle`], which holds the tasks (one [`JoinSet`]) and one [`CancellationToken`].
//! `jalin start`, `jalin demo` and the tests all start nodes this way.
//!
//! Shutdown goes in this order, whoever asks for it (Ctrl-C, [`NodeHandle::shutdown`], or a
//! part that ends by itself, which takes the others down with it):
//!
//! 1. the token is cancelled;
//! 2. the HTTP server stops taking connections and lets the requests in flight finish
//!    (they may still announce a write to the network, so the network is still up);
//! 3. the network task stops: no new sync round, the swarm is dropped and its connections
//!    close;
//! 4. `node.json` is removed, so the CLI no longer finds the node;
//! 5. the library (store and index) is closed when the last holder of it lets it go.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use libp2p::Multiaddr;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{DataDir, RunningNode};
use crate::library::Library;
use crate::network::{NetError, NetHandle};
use crate::server::{AppState, NotExposed};

/// What to start besides the library.
#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    /// Where the HTTP server listens (`None`: no HTTP server).
    pub http: Option<String>,
    /// Whether the HTTP server may listen on an address other machines reach.
    pub expose: bool,
    /// The libp2p listen addresses (`None`: no network).
    pub p2p: Option<Vec<Multiaddr>>,
    /// Write `node.json` (the HTTP URL and the process id) into the data dir, for the CLI.
    pub node_file: bool,
}

impl NodeOptions {
    /// What `jalin start` runs: HTTP and the network at the data dir's configured
    /// addresses, unless given others.
    pub fn from_config(
        data: &DataDir,
        http: Option<String>,
        p2p: Option<String>,
    ) -> Result<NodeOptions, NodeError> {
        let p2p = p2p.unwrap_or_else(|| data.config.network.listen.clone());
        let address = p2p.parse().map_err(|source| NodeError::P2pAddress {
            address: p2p.clone(),
            source,
        })?;
        Ok(NodeOptions {
            http: Some(http.unwrap_or_else(|| data.config.http.listen.clone())),
            expose: data.config.http.expose,
            p2p: Some(vec![address]),
            node_file: true,
        })
    }
}

/// Why a node could not start, or how one of its parts ended.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The HTTP listen address could not be bound.
    #[error("listening on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP listen address is reachable from other machines, and that was not asked.
    #[error(transparent)]
    NotExposed(#[from] NotExposed),
    /// A libp2p listen address that does not parse.
    #[error("{address:?} is not a libp2p listen address: {source}")]
    P2pAddress {
        /// The text given.
        address: String,
        /// Why.
        source: libp2p::multiaddr::Error,
    },
    /// The network could not start.
    #[error("starting the network: {0}")]
    Network(#[from] NetError),
    /// `node.json` could not be written.
    #[error("writing {path}: {source}")]
    NodeFile {
        /// Its path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("serving HTTP: {0}")]
    Http(std::io::Error),
    /// A part's task panicked or was aborted.
    #[error("the node's {part} task ended abnormally: {source}")]
    Task {
        /// Which part.
        part: Part,
        /// Why.
        source: tokio::task::JoinError,
    },
}

/// A part of a running node, each one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The HTTP server (API, OAI-PMH, SRU, web pages).
    Http,
    /// The libp2p swarm and the sync protocol.
    Network,
    /// The waiter that stops the network once HTTP is done (when there is no HTTP
    /// server, it stops it at once).
    Shutdown,
    /// The interlibrary-loan clock: moves the borrower's rotas on.
    Loans,
    /// Posts the ISO 18626 gateway's answers to agencies outside Jalin.
    Gateway,
    /// Sends and hears library profiles on the local network.
    Beacon,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Http => "HTTP",
            Part::Network => "network",
            Part::Shutdown => "shutdown",
            Part::Loans => "interlibrary loan",
            Part::Gateway => "ISO 18626 delivery",
            Part::Beacon => "local-network profiles",
        })
    }
}

/// How often a running node moves the borrower's interlibrary-loan rotas on
/// ([`crate::ill::Loans::advance`]): a day's deadline is met within a minute.
const ROTA_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Moves the borrower's rotas on as the library's clock says (off the async workers).
async fn advance_rotas(library: Arc<Library>) {
    let moved = tokio::task::spawn_blocking(move || {
        // The needs log's old entries go by the same clock.
        let keep = library.data().config.needs.keep_months;
        match library.needs().expire(keep, library.now_ms()) {
            Ok(0) => {}
            Ok(gone) => tracing::info!(gone, "old searches and suggestions deleted"),
            Err(error) => tracing::warn!(%error, "deleting old searches failed"),
        }
        // What the patrons look for, as aggregates, where the agreement says so (once a
        // day).
        match crate::needs::share(&library, false) {
            Ok(0) => {}
            Ok(n) => tracing::info!(consortia = n, "patrons' needs shared"),
            Err(error) => tracing::warn!(%error, "sharing patrons' needs failed"),
        }
        library
            .loans()
            .advance(library.consortia(), library.now_ms())
    })
    .await;
    match moved {
        Ok(Ok(0)) => {}
        Ok(Ok(rotas)) => tracing::info!(rotas, "interlibrary-loan requests passed on"),
        Ok(Err(error)) => tracing::warn!(%error, "moving interlibrary-loan requests on failed"),
        Err(error) => tracing::error!(%error, "the interlibrary-loan clock failed"),
    }
}

/// Starts nodes.
pub struct Node;

impl Node {
    /// Starts the parts `options` ask for over `library`, and returns once each listens.
    /// Nothing is left running when it fails.
    pub async fn spawn(
        library: Arc<Library>,
        options: NodeOptions,
    ) -> Result<NodeHandle, NodeError> {
        // Every log line of this node's tasks names the library (several nodes may run
        // in one process: the demo, the tests).
        let span = tracing::info_span!("node", library = %library.id().fingerprint());
        let cancel = CancellationToken::new();
        // Cancelled once the HTTP server has drained: the network stops after it.
        let http_done = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut parts = HashMap::new();

        let listener = match &options.http {
            Some(address) => {
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .map_err(|source| NodeError::Bind {
                        address: address.clone(),
                        source,
                    })?;
                let local = listener.local_addr().map_err(|source| NodeError::Bind {
                    address: address.clone(),
                    source,
                })?;
                let warning = crate::server::exposure(local, options.expose)?;
                Some((listener, local, warning))
            }
            None => None,
        };

        let net = match options.p2p {
            Some(listen) => {
                let stop = http_done.clone();
                let (net, run) = crate::network::start(library.clone(), listen, async move {
                    stop.cancelled().await;
                })
                .await?;
                let task = tasks.spawn(
                    async move {
                        run.await;
                        Ok(())
                    }
                    .instrument(span.clone()),
                );
                parts.insert(task.id(), Part::Network);
                Some(net)
            }
            None => None,
        };

        let mut http = None;
        let mut exposure_warning = None;
        match listener {
            Some((listener, local, warning)) => {
                exposure_warning = warning;
                let state = Arc::new(AppState::new(
                    library.clone(),
                    library.data().api_token.clone(),
                    net.clone(),
                ));
                let (stop, done) = (cancel.clone(), http_done.clone());
                let task = tasks.spawn(
                    async move {
                        let served =
                            crate::server::serve(listener, state, stop.cancelled_owned()).await;
                        done.cancel();
                        served.map_err(NodeError::Http)
                    }
                    .instrument(span.clone()),
                );
                parts.insert(task.id(), Part::Http);
                http = Some(local);
            }
            None => {
                let (stop, done) = (cancel.clone(), http_done.clone());
                let task = tasks.spawn(async move {
                    stop.cancelled().await;
                    done.cancel();
                    Ok(())
                });
                parts.insert(task.id(), Part::Shutdown);
            }
        }

        // A borrower's request moves on by the clock even when no one asks (a lender
        // silent past the agreement's days): checked every minute.
        {
            let (stop, library) = (cancel.clone(), library.clone());
            let task = tasks.spawn(
                async move {
                    let mut every = tokio::time::interval(ROTA_CHECK_EVERY);
                    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => return Ok(()),
                            _ = every.tick() => advance_rotas(library.clone()).await,
                        }
                    }
                }
                .instrument(span.clone()),
            );
            parts.insert(task.id(), Part::Loans);
        }

        // The gateway's answers to agencies outside Jalin: posted when queued, and the
        // ones not delivered tried again every minute.
        if !library.data().config.iso18626.peers.is_empty() {
            let (stop, library) = (cancel.clone(), library.clone());
            let client = crate::gateway::client().map_err(|e| {
                NodeError::Http(std::io::Error::other(format!("the ISO 18626 client: {e}")))
            })?;
            let task = tasks.spawn(
                async move {
                    let mut queued = library.gateway().watch_queue();
                    let mut every = tokio::time::interval(ROTA_CHECK_EVERY);
                    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => return Ok(()),
                            _ = queued.changed() => {}
                            _ = every.tick() => {}
                        }
                        // A post may hang up to its timeout: stopping does not wait
                        // for it (an answer cut off is posted again next time).
                        tokio::select! {
                            () = stop.cancelled() => return Ok(()),
                            _ = crate::gateway::deliver(library.clone(), &client) => {}
                        }
                    }
                }
                .instrument(span.clone()),
            );
            parts.insert(task.id(), Part::Gateway);
        }

        // Partners on the local network, when the librarian turned it on; and, with the
        // network, the answers to a join code's question (only while a code is open).
        if library.data().config.partners.lan || net.is_some() {
            let (stop, library, net) = (cancel.clone(), library.clone(), net.clone());
            let task = tasks.spawn(
                async move {
                    crate::beacon::run(library, net, stop).await;
                    Ok(())
                }
                .instrument(span.clone()),
            );
            parts.insert(task.id(), Part::Beacon);
        }

        let mut handle = NodeHandle {
            library,
            net,
            http,
            exposure_warning,
            cancel,
            tasks,
            parts,
            node_file: None,
        };
        if options.node_file {
            if let Err(error) = handle.write_node_file() {
                handle.shutdown().await.ok();
                return Err(error);
            }
        }
        Ok(handle)
    }
}

/// A running node. Dropping it aborts its tasks; [`NodeHandle::shutdown`] stops them in
/// order.
pub struct NodeHandle {
    library: Arc<Library>,
    net: Option<NetHandle>,
    http: Option<SocketAddr>,
    exposure_warning: Option<String>,
    cancel: CancellationToken,
    tasks: JoinSet<Result<(), NodeError>>,
    /// Which part each task runs.
    parts: HashMap<tokio::task::Id, Part>,
    node_file: Option<PathBuf>,
}

impl NodeHandle {
    /// The node's library.
    pub fn library(&self) -> &Arc<Library> {
        &self.library
    }

    /// The network, when the node runs one.
    pub fn net(&self) -> Option<&NetHandle> {
        self.net.as_ref()
    }

    /// Where the HTTP server listens, when there is one.
    pub fn http_address(&self) -> Option<SocketAddr> {
        self.http
    }

    /// The HTTP base URL (`http://address`), when there is an HTTP server.
    pub fn url(&self) -> Option<String> {
        self.http.map(|address| format!("http://{address}"))
    }

    /// What listening on a non-loopback address exposes, to print (`None` on loopback).
    pub fn exposure_warning(&self) -> Option<&str> {
        self.exposure_warning.as_deref()
    }

    /// The token whose cancellation stops the node (in the order of the module's docs).
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    fn write_node_file(&mut self) -> Result<(), NodeError> {
        let Some(url) = self.url() else {
            return Ok(());
        };
        let path = DataDir::node_file(&self.library.data().path);
        let text = serde_json::to_string(&RunningNode {
            url,
            pid: std::process::id(),
        })
        .map_err(|e| NodeError::NodeFile {
            path: path.clone(),
            source: e.into(),
        })?;
        std::fs::write(&path, text).map_err(|source| NodeError::NodeFile {
            path: path.clone(),
            source,
        })?;
        self.node_file = Some(path);
        Ok(())
    }

    /// Runs until the token is cancelled or a part ends by itself, then shuts the node
    /// down in order. The first part's error, if any, is returned.
    pub async fn wait(mut self) -> Result<(), NodeError> {
        let first = tokio::select! {
            () = self.cancel.cancelled() => None,
            Some(ended) = self.tasks.join_next_with_id() => Some(ended),
        };
        let mut outcome = first.map_or(Ok(()), |ended| self.settle(ended));
        if let Err(error) = &outcome {
            tracing::error!(%error, "a part of the node failed: stopping the node");
        }
        let rest = self.shutdown().await;
        if outcome.is_ok() {
            outcome = rest;
        }
        outcome
    }

    /// Stops the node in order (see the module's docs) and waits for every part.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        self.cancel.cancel();
        // Work on blocking threads is not cancelled with its task; the runtime waits for
        // it at the end. An index catch-up ends early instead.
        self.library.stop_work();
        let mut outcome = Ok(());
        while let Some(ended) = self.tasks.join_next_with_id().await {
            if let Err(error) = self.settle(ended) {
                if outcome.is_ok() {
                    outcome = Err(error);
                }
            }
        }
        if let Some(path) = self.node_file.take() {
            let _removed = std::fs::remove_file(path);
        }
        outcome
    }

    /// A part's outcome, with a panic or an abort as a [`NodeError::Task`].
    fn settle(
        &self,
        ended: Result<(tokio::task::Id, Result<(), NodeError>), tokio::task::JoinError>,
    ) -> Result<(), NodeError> {
        match ended {
            Ok((_, outcome)) => outcome,
            Err(source) => Err(NodeError::Task {
                part: self
                    .parts
                    .get(&source.id())
                    .copied()
                    .unwrap_or(Part::Shutdown),
                source,
            }),
        }
    }
}
