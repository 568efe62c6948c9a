//! The subcommands. Each prints what a script needs (an id or a key) alone on the last line of
//! stdout, so `id=$(herald shop create --name Demo | tail -n1)` works.

use crate::config::{ApiKeyCommand, Cli, Command, Config, ShopCommand, UserCommand};
use crate::service::Service;
use crate::startup::{shutdown_signal, Server};
use app::backend::Backend;

pub fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn open(config: &Config) -> anyhow::Result<Service> {
    crate::startup::open_service(config).await
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let server = Server::build(&config).await?;
            let url = server.service.public_url.clone();
            println!("Herald is running at {url}");
            println!("Sign in at {url}/login");
            server.run_until(shutdown_signal()).await
        }
        Command::Migrate => {
            open(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    email,
                    password,
                    role,
                    shop,
                },
        } => {
            let service = open(&config).await?;
            let id = service
                .create_user(
                    &Service::system(),
                    &email,
                    &password,
                    &role,
                    shop.as_deref(),
                )
                .await
                .map_err(anyhow::Error::new)?;
            println!("{id}");
            Ok(())
        }
        Command::User {
            command: UserCommand::SetPassword { email, password },
        } => {
            let service = open(&config).await?;
            service
                .set_password_by_email(&email, &password)
                .await
                .map_err(anyhow::Error::new)?;
            println!("Password set; every session of this user has ended.");
            println!("{email}");
            Ok(())
        }
        Command::Shop {
            command:
                ShopCommand::Create {
                    name,
                    enable_webhooks,
                },
        } => {
            let service = open(&config).await?;
            let shop = service
                .create_shop(&Service::system(), &name, enable_webhooks)
                .await
                .map_err(anyhow::Error::new)?;
            println!("{}", shop.id);
            Ok(())
        }
        Command::Copy { from, to } => {
            let source = crate::store::Store::connect(&from)
                .await
                .map_err(|e| anyhow::anyhow!("--from: {e:#}"))?;
            let target = crate::store::Store::connect(&to)
                .await
                .map_err(|e| anyhow::anyhow!("--to: {e:#}"))?;
            source.migrate().await?;
            target.migrate().await?;
            let copied = source.copy_into(&target).await?;
            let mut total = 0;
            for (table, n) in &copied {
                println!("{table}: {n}");
                total += n;
            }
            println!(
                "Start Herald on the new store with the same secret key (HERALD_SECRET_KEY, or \
                 the secret.key file in {}): it opens the endpoints' sealed secrets.",
                config.data_dir.display()
            );
            println!("copied {total} rows");
            Ok(())
        }
        Command::ApiKey {
            command: ApiKeyCommand::Create { shop, name },
        } => {
            let service = open(&config).await?;
            let (id, key) = service
                .create_api_key(&Service::system(), &shop, &name)
                .await
                .map_err(anyhow::Error::new)?;
            println!("API key {id} created for {shop}. It is shown only once:");
            println!("{key}");
            Ok(())
        }
    }
}
