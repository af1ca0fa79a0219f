//! `nexus-flow site add|list`, the real executable on a SQLite file: a new site with its first
//! owner, who can sign in to it; refused keys and duplicates say why and change nothing.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn nexus_flow(database: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nexus-flow"))
        .args(args)
        .args(["--database", database])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nexus-flow runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("password written");
    child.wait_with_output().expect("nexus-flow ends")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn site_add_creates_a_site_and_its_owner_and_site_list_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("nexus.db").display());
    let add = [
        "site",
        "add",
        "--key",
        "shop-two",
        "--name",
        "Shop Two",
        "--owner-email",
        "Owner@Two.test",
    ];
    let out = nexus_flow(&database, &add, "a long owner password\n");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("created site shop-two"),
        "{}",
        text(&out)
    );

    let again = nexus_flow(&database, &add, "a long owner password\n");
    assert!(!again.status.success());
    assert!(text(&again).contains("exists already"), "{}", text(&again));
    for bad in ["Shop Two", "x", "-shop", "shop/two"] {
        let key = format!("--key={bad}");
        let out = nexus_flow(&database, &["site", "add", &key, "--name", "Bad"], "");
        assert!(!out.status.success(), "{bad:?} was accepted");
        assert!(text(&out).contains("lower-case letters"), "{}", text(&out));
    }
    let short = nexus_flow(
        &database,
        &[
            "site",
            "add",
            "--key",
            "shop-three",
            "--name",
            "Three",
            "--owner-email",
            "o@three.test",
        ],
        "short\n",
    );
    assert!(!short.status.success());
    assert!(text(&short).contains("at least"), "{}", text(&short));

    let list = nexus_flow(&database, &["site", "list"], "");
    assert!(list.status.success(), "{}", text(&list));
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    let keys: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(keys, ["demo", "shop-two"], "{listed}");
    assert!(listed.contains("Shop Two"));

    // The owner signs in to the new site with that password.
    let store = nexus_server::store::connect(&database).await.unwrap();
    let site = store
        .site_by_key("shop-two")
        .await
        .unwrap()
        .expect("the site");
    let (user, hash) = store
        .user_by_email(site.id, "owner@two.test")
        .await
        .unwrap()
        .expect("its owner");
    assert_eq!(user.role, nexus_shared::Role::Owner);
    assert!(nexus_server::access::accounts::verify_password(
        "a long owner password",
        &hash
    ));
    assert!(store.kb_entries(site.id).await.unwrap().is_empty());
}
