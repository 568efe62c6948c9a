//! The foundation, end to end over HTTP: health, sign-in, sessions, roles and shops.

mod common;

use app::api::{AddMember, ListNodes, SetWebhooks};
use app::backend::Backend;
use common::*;

#[tokio::test]
async fn health_answers_when_the_database_does() {
    let app = TestApp::spawn().await;
    let resp = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let health: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["database"]["ok"], true, "{health}");
    let store = if common::on_postgres() {
        "postgresql"
    } else {
        "sqlite"
    };
    assert_eq!(health["database"]["store"], store, "{health}");
    assert!(
        health["node"].as_str().is_some_and(|n| !n.is_empty()),
        "{health}"
    );
}

#[tokio::test]
async fn a_protected_page_without_a_session_redirects_to_login() {
    let app = TestApp::spawn().await;
    let resp = app
        .client()
        .get(app.url("/admin/shops"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/login?next=/admin/shops");
}

#[tokio::test]
async fn signing_in_sets_a_session_cookie_that_opens_the_panel() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let resp = client
        .post(app.url("/login"))
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("herald_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );

    let page = client.get(app.url("/admin/shops")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let body = page.text().await.unwrap();
    assert!(body.contains("Create a shop"), "{body}");

    let out = client.post(app.url("/logout")).send().await.unwrap();
    assert_eq!(out.status(), 303);
    let again = client.get(app.url("/admin/shops")).send().await.unwrap();
    assert_eq!(again.status(), 303);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = TestApp::spawn().await;
    for email in [ADMIN_EMAIL, "nobody@example.com"] {
        let resp = app
            .client()
            .post(app.url("/login"))
            .form(&[("email", email), ("password", "wrong-password")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303);
        assert_eq!(resp.headers()["location"], "/login?error=invalid");
    }
}

#[tokio::test]
async fn repeated_failed_sign_ins_are_throttled() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let mut last = String::new();
    for _ in 0..7 {
        let resp = client
            .post(app.url("/login"))
            .form(&[("email", ADMIN_EMAIL), ("password", "wrong-password")])
            .send()
            .await
            .unwrap();
        last = resp.headers()["location"].to_str().unwrap().to_string();
    }
    assert_eq!(last, "/login?error=throttled");
    let page = client.get(app.url(&last)).send().await.unwrap();
    assert_eq!(page.status(), 429);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("Too many sign-in attempts"));
}

/// Where a sign-in without `next` lands: the only shop of a member of one, the shop the
/// switcher last chose (if the user may still open it), else the list of shops.
#[tokio::test]
async fn sign_in_lands_on_the_only_or_the_last_chosen_shop() {
    let app = TestApp::spawn().await;
    let (mine, email, password) = app.shop_with("owner").await;
    let (other, _, _) = app.shop_with("owner").await;
    let land = |cookie: Option<String>, email: String, password: String| {
        let app = &app;
        async move {
            let mut req = app
                .client()
                .post(app.url("/login"))
                .form(&[("email", email.as_str()), ("password", password.as_str())]);
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 303);
            resp.headers()["location"].to_str().unwrap().to_string()
        }
    };
    assert_eq!(
        land(None, email.clone(), password.clone()).await,
        format!("/shops/{mine}")
    );
    // A remembered shop the owner may not open is ignored.
    let theirs = Some(format!("herald_shop={other}"));
    assert_eq!(
        land(theirs.clone(), email.clone(), password.clone()).await,
        format!("/shops/{mine}")
    );
    // The operator sees every shop: the list, or the shop the switcher last chose.
    let (op_email, op_password) = (ADMIN_EMAIL.to_string(), ADMIN_PASSWORD.to_string());
    assert_eq!(land(None, op_email.clone(), op_password.clone()).await, "/");
    assert_eq!(
        land(theirs, op_email, op_password).await,
        format!("/shops/{other}")
    );

    // The switcher remembers its choice in that cookie.
    let client = app.signed_in(&email, &password).await;
    let resp = client
        .get(app.url(&format!("/switch?shop={mine}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with(&format!("herald_shop={mine};")),
        "{cookie}"
    );
    assert!(cookie.contains("HttpOnly"), "{cookie}");
}

#[tokio::test]
async fn a_viewer_gets_403_on_owner_pages_and_actions() {
    let app = TestApp::spawn().await;
    let (shop, email, password) = app.shop_with("viewer").await;
    let client = app.signed_in(&email, &password).await;

    let dashboard = client
        .get(app.url(&format!("/shops/{shop}")))
        .send()
        .await
        .unwrap();
    assert_eq!(dashboard.status(), 200);
    let members = client
        .get(app.url(&format!("/shops/{shop}/members")))
        .send()
        .await
        .unwrap();
    assert_eq!(members.status(), 403);
    let admin = client.get(app.url("/admin/shops")).send().await.unwrap();
    assert_eq!(admin.status(), 403);

    let resp = call_server_fn::<AddMember>(
        &app,
        &client,
        &[
            ("shop_id", &shop),
            ("email", "x@example.com"),
            ("password", "password-123"),
            ("role", "owner"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 403);
    let listed = app
        .service
        .store
        .members_of_shop(&shop.as_str().into())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "nothing was added");
}

#[tokio::test]
async fn an_owner_of_another_shop_gets_403() {
    let app = TestApp::spawn().await;
    let (_mine, email, password) = app.shop_with("owner").await;
    let (theirs, _, _) = app.shop_with("owner").await;
    let client = app.signed_in(&email, &password).await;
    let page = client
        .get(app.url(&format!("/shops/{theirs}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
    let resp =
        call_server_fn::<SetWebhooks>(&app, &client, &[("shop_id", &theirs), ("enabled", "false")])
            .await;
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn an_operator_enables_webhooks_for_a_shop() {
    let app = TestApp::spawn().await;
    let shop = app
        .service
        .store
        .create_shop("Fresh shop", false)
        .await
        .unwrap();
    assert!(!shop.webhooks_enabled, "off for a new shop");
    let client = app.signed_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let resp =
        call_server_fn::<SetWebhooks>(&app, &client, &[("shop_id", &shop.id), ("enabled", "true")])
            .await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    let after = app.service.store.shop(&shop.id).await.unwrap().unwrap();
    assert!(after.webhooks_enabled);
}

#[tokio::test]
async fn a_cross_site_form_post_is_refused() {
    let app = TestApp::spawn().await;
    let resp = reqwest::Client::new()
        .post(app.url("/login"))
        .header("origin", "https://evil.example")
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let first = TestApp::start(config.clone()).await;
    let resp = first
        .client()
        .post(first.url("/login"))
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    drop(first);

    let second = TestApp::start(config).await;
    let page = second
        .client()
        .get(second.url("/admin/shops"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "still signed in after the restart");
}

#[test]
fn the_command_line_prints_ids_and_keys_on_the_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = common::herald_cli(dir.path()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        common::last_line(&out)
    };
    let shop = run(&["shop", "create", "--name", "Demo", "--enable-webhooks"]);
    assert!(shop.starts_with("shp_"), "{shop}");
    let user = run(&[
        "user",
        "create",
        "--email",
        "o@example.com",
        "--password",
        "password-1",
        "--role",
        "owner",
        "--shop",
        &shop,
    ]);
    assert!(user.starts_with("usr_"), "{user}");
    let set = run(&[
        "user",
        "set-password",
        "--email",
        "o@example.com",
        "--password",
        "password-2",
    ]);
    assert_eq!(set, "o@example.com");
    let key = run(&["api-key", "create", "--shop", &shop, "--name", "ci"]);
    assert!(key.starts_with("hk_") && key.len() == 67, "{key}");
    assert_eq!(run(&["migrate"]), "migrations applied");
}

#[tokio::test]
async fn user_set_password_replaces_a_forgotten_operator_password() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::test_config(dir.path());
    let url = config.database_url.clone();
    drop(TestApp::start(config.clone()).await);
    let set = |email: &str, password: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args([
                "user",
                "set-password",
                "--email",
                email,
                "--password",
                password,
            ])
            .env("HERALD_DATABASE_URL", &url)
            .env("HERALD_LOG", "warn")
            .output()
            .unwrap()
    };
    let short = set(ADMIN_EMAIL, "short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8"));
    let unknown = set("nobody@example.com", "long-enough-1");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nobody@example.com"));
    assert!(set(ADMIN_EMAIL, "a-new-operator-password").status.success());

    let app = TestApp::start(config).await;
    assert!(app
        .service
        .authenticate(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .unwrap()
        .is_none());
    app.signed_in(ADMIN_EMAIL, "a-new-operator-password").await;
}

/// POSTs the Account page's form; returns where it redirects.
async fn change_password(
    app: &TestApp,
    client: &reqwest::Client,
    current: &str,
    new: &str,
) -> String {
    let resp = client
        .post(app.url("/account/password"))
        .form(&[("current_password", current), ("new_password", new)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    resp.headers()["location"].to_str().unwrap().to_string()
}

async fn page_status(app: &TestApp, client: &reqwest::Client, path: &str) -> u16 {
    client
        .get(app.url(path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn changing_ones_password_ends_the_other_sessions_only() {
    let app = TestApp::spawn().await;
    let (shop, email, password) = app.shop_with("owner").await;
    let here = app.signed_in(&email, &password).await;
    let elsewhere = app.signed_in(&email, &password).await;
    let dashboard = format!("/shops/{shop}");

    assert_eq!(
        change_password(&app, &here, "wrong-password", "new-password-1").await,
        "/account?error=current_password"
    );
    assert_eq!(
        change_password(&app, &here, &password, "short").await,
        "/account?error=new_password"
    );
    assert_eq!(
        page_status(&app, &elsewhere, &dashboard).await,
        200,
        "failed attempts change nothing"
    );

    assert_eq!(
        change_password(&app, &here, &password, "new-password-1").await,
        "/account?changed=1"
    );
    assert_eq!(
        page_status(&app, &here, &dashboard).await,
        200,
        "this session goes on"
    );
    assert_eq!(
        page_status(&app, &elsewhere, &dashboard).await,
        303,
        "the other session ended"
    );
    assert!(app
        .service
        .authenticate(&email, &password)
        .await
        .unwrap()
        .is_none());
    app.signed_in(&email, "new-password-1").await;
    assert_eq!(page_status(&app, &here, "/account").await, 200);
}

#[tokio::test]
async fn an_operator_resets_a_users_password_and_their_sessions_end() {
    use app::api::ResetPassword;
    let app = TestApp::spawn().await;
    let (shop, email, password) = app.shop_with("owner").await;
    let user = app.signed_in(&email, &password).await;
    let user_id = app
        .service
        .store
        .user_by_email(&email)
        .await
        .unwrap()
        .unwrap()
        .id;

    let refused = call_server_fn::<ResetPassword>(
        &app,
        &user,
        &[("user_id", &user_id), ("password", "hijacked-123")],
    )
    .await;
    assert_eq!(refused.status(), 403, "only operators reset passwords");

    let operator = app.signed_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let short = call_server_fn::<ResetPassword>(
        &app,
        &operator,
        &[("user_id", &user_id), ("password", "short")],
    )
    .await;
    assert_eq!(short.status(), 422);
    let done = call_server_fn::<ResetPassword>(
        &app,
        &operator,
        &[("user_id", &user_id), ("password", "reset-password-1")],
    )
    .await;
    assert_eq!(done.status(), 200);
    assert_eq!(
        page_status(&app, &user, &format!("/shops/{shop}")).await,
        303,
        "the user's session ended"
    );
    app.signed_in(&email, "reset-password-1").await;
    assert_eq!(
        page_status(&app, &operator, "/admin/users").await,
        200,
        "the operator's own session goes on"
    );
}

#[tokio::test]
async fn a_shop_without_endpoints_shows_the_first_steps_with_this_installations_url() {
    let app = TestApp::spawn().await;
    let (shop, email, password) = app.shop_with("owner").await;
    let client = app.signed_in(&email, &password).await;
    let page = client
        .get(app.url(&format!("/shops/{shop}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Next steps"), "{page}");
    assert!(page.contains(&format!("curl -X POST http://{}/api/v1/events", app.addr)));
    assert!(page.contains(&format!("/shops/{shop}/settings#api-keys")));
}

/// Point 16 of the hardening issue: no inline script runs unless the page's nonce names it.
#[tokio::test]
async fn pages_allow_inline_scripts_only_by_their_nonce() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let page = client.get(app.url("/login")).send().await.unwrap();
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        let script_src = csp
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("script-src"))
            .unwrap_or_else(|| panic!("no script-src in {csp}"));
        assert!(!script_src.contains("unsafe-inline"), "{csp}");
        let nonce = script_src
            .split_whitespace()
            .find_map(|s| s.strip_prefix("'nonce-")?.strip_suffix('\''))
            .unwrap_or_else(|| panic!("no nonce in {csp}"))
            .to_string();
        assert!(nonce.len() >= 16, "{nonce}");
        let body = page.text().await.unwrap();
        let scripts: Vec<&str> = body.split("<script").skip(1).collect();
        assert!(!scripts.is_empty(), "{body}");
        for s in scripts {
            let tag = &s[..s.find('>').unwrap()];
            assert!(tag.contains(&format!("nonce=\"{nonce}\"")), "<script{tag}>");
        }
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1], "a nonce is used once");
    // Other responses name no nonce: no inline script at all.
    let api = client.get(app.url("/healthz")).send().await.unwrap();
    let csp = api.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self' 'wasm-unsafe-eval';"),
        "{csp}"
    );
}

/// Point 16: a session in use is saved again (its expiry moves), so only inactivity ends it.
/// The store would otherwise keep the expiry of the last save: 7 days after sign-in.
#[tokio::test]
async fn a_session_in_use_moves_its_expiry() {
    let app = TestApp::spawn().await;
    let client = app.signed_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    // As if the last save were almost 7 days ago: a minute left. (The store keeps the
    // expiry as RFC 3339 text and compares it as text.)
    herald::with_raw_pool!(app.service.store, |pool, d| {
        sqlx::query(d.pick(
            "UPDATE sessions SET expiry_date = strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+60 seconds')",
            "UPDATE sessions SET expiry_date = now() + interval '60 seconds'",
        ))
        .execute(pool)
        .await
        .unwrap();
    });
    // The next use (the keep-alive saves once a day; the sign-in itself did not).
    let page = client.get(app.url("/admin/shops")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let (moved, expiry): (bool, String) = herald::with_raw_pool!(app.service.store, |pool, d| {
        sqlx::query_as(d.pick(
            "SELECT MAX(expiry_date) > strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+6 days'), MAX(expiry_date)
             FROM sessions",
            "SELECT MAX(expiry_date) > now() + interval '6 days', MAX(expiry_date)::text FROM sessions",
        ))
        .fetch_one(pool)
        .await
        .unwrap()
    });
    assert!(moved, "the expiry moved to 7 days from now: {expiry}");
}

/// A write that would duplicate what must be unique is the caller's conflict (409, saying
/// what is taken), not a server error.
#[tokio::test]
async fn a_duplicate_is_a_conflict_that_says_what_is_taken() {
    let app = TestApp::spawn().await;
    let store = &app.service.store;
    store
        .create_user("dup@example.com", "x", false, None)
        .await
        .unwrap();
    let err = store
        .create_user("DUP@example.com", "x", false, None)
        .await
        .unwrap_err();
    match &err {
        herald::store::Error::Conflict(m) => {
            assert_eq!(m, "A user with this email already exists.")
        }
        other => panic!("not a conflict: {other:?}"),
    }
    let service_error = app::model::ServiceError::from(err);
    assert_eq!(service_error.status(), 409);
    assert_eq!(service_error.code(), "conflict");
}

/// The operator's Nodes page lists this node, alive, with what it holds; nobody else sees it.
#[tokio::test]
async fn the_nodes_page_shows_this_node_to_operators_only() {
    let app = TestApp::spawn().await;
    let node = app.service.engine.node_id().to_string();
    // The first heartbeat is written as the engine starts.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let overview = loop {
        let o = app
            .service
            .list_nodes(&herald::service::Service::system())
            .await
            .unwrap();
        if !o.nodes.is_empty() || std::time::Instant::now() > deadline {
            break o;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let me = overview
        .nodes
        .iter()
        .find(|n| n.id == node)
        .expect("this node is listed");
    assert!(me.alive && me.this_node && me.holding == 0, "{me:?}");
    let expected = if common::on_postgres() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    assert_eq!(overview.store, expected);

    let operator = app.signed_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let page = operator.get(app.url("/admin/nodes")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("{node} (this node)")), "{html}");
    assert!(html.contains("alive"));

    let (_, email, password) = app.shop_with("owner").await;
    let owner = app.signed_in(&email, &password).await;
    let page = owner.get(app.url("/admin/nodes")).send().await.unwrap();
    assert_eq!(page.status(), 403);
    let resp = call_server_fn::<ListNodes>(&app, &owner, &[]).await;
    assert_eq!(resp.status(), 403);
}
