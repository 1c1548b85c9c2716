//! Setup commands: keygen, authorize, hostkey.

use crate::error::{Error, Result, Status};
use argh::FromArgs;

/// Generate the client's SSH key and print the line to paste on the server.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "keygen")]
pub struct Keygen {
    /// private key file to create
    #[argh(option)]
    pub out: Option<String>,
}

/// Add a client's key to authorized_keys with the forced command.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "authorize")]
pub struct Authorize {
    /// client name
    #[argh(option)]
    pub client: String,
    /// public key line or file
    #[argh(positional)]
    pub key: String,
}

/// Print this server's host key lines for the client's pinned host key.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "hostkey")]
pub struct Hostkey {}

pub fn keygen(_a: &Keygen) -> Result<()> {
    Err(Error::new(Status::Internal, "keygen: not built yet"))
}

pub fn authorize(_a: &Authorize) -> Result<()> {
    Err(Error::new(Status::Internal, "authorize: not built yet"))
}

pub fn hostkey(_a: &Hostkey) -> Result<()> {
    Err(Error::new(Status::Internal, "hostkey: not built yet"))
}
