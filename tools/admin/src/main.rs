//! `lectern-admin`: operator commands that no endpoint offers.
//!
//! `create-admin` makes an administrator account: the only way to the first
//! one. `import-course` sends a course file (JSON or YAML) to a running API. The password is read from `LECTERN_ADMIN_PASSWORD` or, when that is
//! unset, from the first line of standard input — never from the command line,
//! where other users of the machine could read it in the process list.

use std::io::BufRead;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "lectern operator commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an administrator (applies pending migrations first).
    ///
    /// Connects to DATABASE_URL (default: the local database) and REDIS_URL.
    CreateAdmin {
        /// Their email (also their sign-in name).
        #[arg(long)]
        email: String,
        /// Their name as shown to people.
        #[arg(long, default_value = "Administrator")]
        name: String,
    },
    /// Import a course from a JSON or YAML file: a new course, or the next
    /// version of the organization's course with the same key (an unchanged
    /// file writes nothing).
    ///
    /// The bearer token (a teacher's or org admin's of the organization, or a
    /// platform admin's) is read from LECTERN_TOKEN, never from the command line.
    ImportCourse {
        /// The API's base URL.
        #[arg(long, env = "LECTERN_API_URL", default_value = "http://127.0.0.1:3000")]
        api: String,
        /// The organization the course belongs to.
        #[arg(long)]
        organization: uuid::Uuid,
        /// The course file (`.yaml`/`.yml` is read as YAML, anything else as JSON).
        file: std::path::PathBuf,
    },
}

#[tokio::main]
async fn main() {
    if let Err(line) = run(Cli::parse()).await {
        eprintln!("lectern-admin: {line}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::CreateAdmin { email, name } => {
            let password = password()?;
            let app = lectern::local::app().await?;
            let user =
                lectern::services::auth::accounts::create_admin(&app, &email, &name, &password)
                    .await
                    .map_err(|e| e.to_string())?;
            println!("created admin {} ({})", user.email, user.id);
            Ok(())
        }
        Command::ImportCourse {
            api,
            organization,
            file,
        } => {
            let token = std::env::var("LECTERN_TOKEN")
                .map_err(|_| "LECTERN_TOKEN (a bearer token) is not set".to_owned())?;
            let line = tokio::task::spawn_blocking(move || {
                lectern_admin::import_course(&api, &token, organization, &file)
            })
            .await
            .map_err(|e| e.to_string())??;
            println!("{line}");
            Ok(())
        }
    }
}

fn password() -> Result<String, String> {
    if let Ok(p) = std::env::var("LECTERN_ADMIN_PASSWORD") {
        return Ok(p);
    }
    eprintln!("password (at least 12 characters), then Enter:");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
