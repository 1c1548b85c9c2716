//! End to end over the real Dropbear and OpenSSH on loopback.

use crate::util::*;
use std::process::Command;

fn once(flavor: Flavor) {
    let dir = TempDir::new("once");
    let srv0 = SshServer::start(flavor, "");
    let key = srv0.client_key(&dir, "id");
    srv0.set_authorized_keys(&forced_line(&server_command(""), &key));
    let r = run(client_cmd(&srv0, &key, &dir).args(["--once", "64", "127.0.0.1"]));
    r.ok()
        .stdout_has("received 64 bytes")
        .stdout_has("credited 128 bits");
}

#[test]
fn once_over_dropbear() {
    once(Flavor::Dropbear);
}

#[test]
fn once_over_openssh() {
    once(Flavor::OpenSsh);
}
