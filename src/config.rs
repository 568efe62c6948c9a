//! The command line and its configuration: one clap struct, every flag with an `HERALD_*`
//! environment equivalent.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "herald",
    version,
    about = "Self-hosted webhook delivery with an admin panel"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Settings shared by every subcommand.
#[derive(Args, Debug, Clone)]
pub struct Config {
    /// Where the store lives. Default: a SQLite file under ./data.
    #[arg(
        long,
        env = "HERALD_DATABASE_URL",
        default_value = "sqlite://data/herald.db",
        global = true
    )]
    pub database_url: String,

    /// Directory for Herald's own files (the database by default, the secret key file).
    #[arg(long, env = "HERALD_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: std::path::PathBuf,

    /// Address the server listens on. Wins over the site address in Cargo.toml.
    #[arg(
        long,
        env = "HERALD_LISTEN",
        default_value = "127.0.0.1:3000",
        global = true
    )]
    pub listen: SocketAddr,

    /// The URL people reach Herald at, when behind a proxy. An https URL makes the session
    /// cookie `Secure`. Default: http://<listen>.
    #[arg(long, env = "HERALD_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// Email of the operator account created on first start. Default: admin@herald.local.
    #[arg(
        long,
        env = "HERALD_ADMIN_EMAIL",
        default_value = "admin@herald.local",
        global = true
    )]
    pub admin_email: String,

    /// Password of the operator created on first start; when unset a random one is printed once.
    #[arg(
        long,
        env = "HERALD_ADMIN_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub admin_password: Option<String>,

    /// Sign-in attempts allowed in a burst per email from one client address, then one every
    /// 12 s; each address gets six times as many over all emails, and each email ten times as
    /// many from all addresses (then one every 6 s).
    #[arg(long, env = "HERALD_SIGNIN_BURST", default_value_t = 5, global = true)]
    pub signin_burst: u32,

    /// Key that encrypts secrets at rest (signing secrets, basic-auth passwords, client keys):
    /// 32 bytes as base64 or hex. When unset, a key file `secret.key` in the data directory is
    /// created on first start and used from then on.
    #[arg(long, env = "HERALD_SECRET_KEY", hide_env_values = true, global = true)]
    pub secret_key: Option<String>,

    /// Allow deliveries to loopback, private and link-local addresses (development and tests).
    #[arg(long, env = "HERALD_ALLOW_PRIVATE_TARGETS", default_value = "false", value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub allow_private_targets: bool,

    /// Largest request body the REST API accepts, in bytes (16 MiB).
    #[arg(long, env = "HERALD_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024, global = true)]
    pub max_body_bytes: usize,

    /// Largest `data` of one event, in bytes (1 MiB).
    #[arg(long, env = "HERALD_MAX_EVENT_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub max_event_bytes: usize,

    /// Deliveries in flight at once, across all endpoints.
    #[arg(long, env = "HERALD_CONCURRENCY", default_value_t = 256, global = true)]
    pub concurrency: usize,

    /// Deliveries in flight at once to one endpoint, so a slow one cannot hold up the rest.
    #[arg(
        long,
        env = "HERALD_ENDPOINT_CONCURRENCY",
        default_value_t = 32,
        global = true
    )]
    pub endpoint_concurrency: usize,

    /// Seconds a claimed delivery stays leased; a process that dies mid-delivery releases its
    /// deliveries when the lease runs out.
    #[arg(
        long,
        env = "HERALD_LEASE_SECONDS",
        default_value_t = 60,
        global = true
    )]
    pub lease_seconds: u64,

    /// Seconds a stop (SIGTERM, Ctrl-C) may take: requests and attempts in flight finish
    /// within it, what is unfinished then is given back to the queue, and the process ends.
    #[arg(
        long,
        env = "HERALD_SHUTDOWN_GRACE_SECONDS",
        default_value_t = 10,
        global = true
    )]
    pub shutdown_grace_seconds: u64,

    /// For tests and soak benchmarks: every shop keeps its logs and failed deliveries this
    /// many seconds instead of its own retention settings.
    #[arg(long, env = "HERALD_RETENTION_SECONDS", global = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_seconds: Option<u64>,

    /// Seconds a connection may take to send a request's headers, counted from when it is
    /// opened or, kept alive, from its last response: a client that sends a header line now
    /// and then, or an idle keep-alive connection, is closed then.
    #[arg(long, env = "HERALD_HEADER_TIMEOUT_SECONDS", default_value_t = 30, global = true, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_seconds: u64,

    /// Seconds a request may take until its response starts (reading its body included);
    /// past it the request is answered 408 and its work stops. A live activity stream's
    /// response starts at once and then runs for as long as it is open.
    #[arg(long, env = "HERALD_REQUEST_TIMEOUT_SECONDS", default_value_t = 60, global = true, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_seconds: u64,

    /// Live activity streams (the Activity page, `GET /api/v1/activity`) one user or API key
    /// may hold open at once on a node; past it a new one is refused with 429.
    #[arg(long, env = "HERALD_STREAMS_PER_CLIENT", default_value_t = crate::engine::activity::DEFAULT_STREAMS_PER_HOLDER, global = true, value_parser = parse_streams)]
    pub streams_per_client: usize,

    /// Reverse proxies whose `X-Forwarded-For` is believed, as addresses or networks
    /// (`10.0.0.1,10.1.0.0/16`). Without it the client address is the connection's peer.
    #[arg(long, env = "HERALD_TRUSTED_PROXIES", global = true, value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Bearer token for the per-endpoint series of `GET /metrics`. Without it (or without the
    /// token configured) a scrape sees installation-wide totals only, nothing of any shop.
    #[arg(long, env = "HERALD_METRICS_TOKEN", global = true)]
    pub metrics_token: Option<String>,

    /// Connections this node keeps to PostgreSQL (each node; mind the server's
    /// `max_connections`). No effect on SQLite.
    #[arg(long, env = "HERALD_DATABASE_CONNECTIONS", default_value_t = crate::store::DEFAULT_PG_CONNECTIONS, global = true, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub database_connections: u32,

    /// This node's name, shown on the operator's Nodes page (default: hostname and process id).
    #[arg(long, env = "HERALD_NODE_ID", global = true, value_parser = parse_node_id)]
    pub node_id: Option<String>,

    /// How SQLite makes a commit durable: `full` (default) syncs every commit to disk before
    /// a publish is answered; `normal` survives a killed process but may lose the last
    /// commits to a power loss or an OS crash, for fewer syncs. No effect on PostgreSQL.
    #[arg(long, env = "HERALD_SQLITE_SYNCHRONOUS", value_enum, default_value_t = crate::store::SqliteSync::Full, global = true)]
    pub sqlite_synchronous: crate::store::SqliteSync,

    /// Log filter in tracing's syntax, e.g. `info` or `herald=debug,tower_http=info`.
    #[arg(long, env = "HERALD_LOG", default_value = "info", global = true)]
    pub log: String,
}

fn parse_streams(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(format!("`{s}` is not a number of streams from 1 to 1000")),
    }
}

impl Config {
    /// The address to print and to build links with.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_string()
    }

    /// Session cookies are `Secure` when Herald is reached over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url().starts_with("https://")
    }
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Run the server: panel, API and delivery engine in one process.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage shops.
    Shop {
        #[command(subcommand)]
        command: ShopCommand,
    },
    /// Manage API keys.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Copy an installation from one store to another (e.g. SQLite to PostgreSQL): users,
    /// shops, keys, endpoints with their sealed secrets, the catalog, events, deliveries with
    /// their state, attempts and alerts. The target must be empty; start Herald on it with
    /// the same secret key. Sessions are not copied: users sign in again.
    Copy {
        /// The store to copy from (sqlite://… or postgres://…).
        #[arg(long)]
        from: String,
        /// The new, empty store to copy into.
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum UserCommand {
    /// Create a user; prints the user id on the last line.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
        /// operator, owner or viewer.
        #[arg(long)]
        role: String,
        /// The shop an owner or viewer belongs to.
        #[arg(long)]
        shop: Option<String>,
    },
    /// Set a user's password (a forgotten operator password); their sessions end. Prints the
    /// user's email on the last line.
    SetPassword {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum ShopCommand {
    /// Create a shop; prints the shop id on the last line.
    Create {
        #[arg(long)]
        name: String,
        /// Turn the webhooks feature on (it is off for a new shop).
        #[arg(long)]
        enable_webhooks: bool,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum ApiKeyCommand {
    /// Create an API key for a shop; prints the key (shown only once) on the last line.
    Create {
        #[arg(long)]
        shop: String,
        #[arg(long)]
        name: String,
    },
}

/// A node name: 1–64 visible ASCII characters, no spaces (it names the node in logs and pages).
fn parse_node_id(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "`{s}` is not a node name: use 1 to 64 letters, digits or punctuation, no spaces"
        ));
    }
    Ok(s.to_string())
}

impl Config {
    /// This node's name: `HERALD_NODE_ID`, else the hostname and the process id.
    pub fn node_name(&self) -> String {
        self.node_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "herald".into());
            format!("{host}-{}", std::process::id())
        })
    }
}

/// An address (`10.0.0.1`, `::1`) or a network (`10.0.0.0/8`).
fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is not an IP address or network such as 10.0.0.0/8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Cli, String> {
        Cli::try_parse_from(std::iter::once("herald").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_node_name_and_a_pool_size_are_checked_and_named_when_wrong() {
        let cli = parse(&["--node-id", "eu-1", "--database-connections", "40"]).unwrap();
        assert_eq!(cli.config.node_name(), "eu-1");
        assert_eq!(cli.config.database_connections, 40);
        let bad = parse(&["--node-id", "has space"]).unwrap_err();
        assert!(
            bad.contains("--node-id") && bad.contains("not a node name"),
            "{bad}"
        );
        let bad = parse(&["--database-connections", "1"]).unwrap_err();
        assert!(bad.contains("--database-connections"), "{bad}");
        let default = parse(&[]).unwrap().config;
        assert_eq!(
            default.database_connections,
            crate::store::DEFAULT_PG_CONNECTIONS
        );
        assert!(default
            .node_name()
            .ends_with(&format!("-{}", std::process::id())));
    }
}
