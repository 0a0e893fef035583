//! Inbound: verification before anything is stored, dedupe, and the Meta handshake.

use switchboard_tests::*;

#[tokio::test]
async fn a_meta_signed_webhook_is_accepted_and_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    let body = fixture("text.json");

    let resp = d.signed_webhook(&body).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-correlation-id"));
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["stored"], 1);

    let claim = d.claim(10, 30_000).await;
    let events = claim["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"], "message");
    assert_eq!(events[0]["text"], "Does it come in another color?");
    assert_eq!(events[0]["conversation"], USER);
    assert_eq!(events[0]["account"], "wa-main");
    d.stop().await;
}

#[tokio::test]
async fn tampered_wrongly_signed_or_unsigned_webhooks_get_401_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    let body = fixture("text.json");
    let good_sig = meta_signature(APP_SECRET, &body);

    let mut tampered = body.clone();
    let i = tampered.iter().position(|b| *b == b'c').unwrap();
    tampered[i] = b'C';
    assert_eq!(d.webhook("wa-main", &tampered, Some(&good_sig)).await.status(), 401, "one byte changed");
    let wrong = meta_signature("not-the-app-secret", &body);
    assert_eq!(d.webhook("wa-main", &body, Some(&wrong)).await.status(), 401, "wrong secret");
    assert_eq!(d.webhook("wa-main", &body, None).await.status(), 401, "no header");
    assert_eq!(d.webhook("wa-main", &body, Some("sha256=zz")).await.status(), 401, "malformed header");

    assert_eq!(d.daemon.app().store.inbox_len().await.unwrap(), 0);
    assert_eq!(d.claim(10, 30_000).await["events"].as_array().unwrap().len(), 0);
    d.stop().await;
}

#[tokio::test]
async fn the_same_webhook_five_times_concurrently_yields_one_event() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    let body = fixture("text.json");
    let sig = meta_signature(APP_SECRET, &body);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let (http, url, body, sig) = (d.http.clone(), format!("{}/webhooks/wa-main", d.base), body.clone(), sig.clone());
        set.spawn(async move { http.post(url).header("x-hub-signature-256", sig).body(body).send().await.unwrap() });
    }
    let mut stored = 0;
    for r in set.join_all().await {
        assert_eq!(r.status(), 200, "duplicates are acknowledged too");
        stored += r.json::<serde_json::Value>().await.unwrap()["stored"].as_u64().unwrap();
    }
    assert_eq!(stored, 1);
    assert_eq!(d.daemon.app().store.inbox_len().await.unwrap(), 1);
    d.stop().await;
}

#[tokio::test]
async fn a_multi_message_delivery_and_unknown_types_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    for f in ["multi.json", "location_unsupported.json", "image.json", "interactive_button_reply.json", "button.json", "reaction.json"] {
        assert_eq!(d.signed_webhook(&fixture(f)).await.status(), 200, "{f}");
    }
    let claim = d.claim(100, 30_000).await;
    let kinds: Vec<_> = claim["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "unsupported").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "reaction").count(), 1, "{kinds:?}");
    assert!(kinds.len() >= 6, "{kinds:?}");
    d.stop().await;
}

#[tokio::test]
async fn unknown_accounts_404_and_oversized_bodies_413() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    assert_eq!(d.webhook("nope", b"{}", Some("sha256=00")).await.status(), 404);
    let big = vec![b' '; 1024 * 1024 + 1];
    let sig = meta_signature(APP_SECRET, &big);
    assert_eq!(d.webhook("wa-main", &big, Some(&sig)).await.status(), 413);
    d.stop().await;
}

#[tokio::test]
async fn the_meta_handshake_echoes_the_challenge_only_for_the_verify_token() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    let url = |token: &str| {
        format!("{}/webhooks/wa-main?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444", d.base)
    };
    let ok = d.http.get(url(VERIFY_TOKEN)).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    assert_eq!(d.http.get(url("wrong")).send().await.unwrap().status(), 403);
    d.stop().await;
}

#[tokio::test]
async fn an_account_whose_secret_is_missing_does_not_start_and_answers_503() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let text = config_toml(dir.path(), &mock.base_url())
        .replace(&format!("app_secret = \"{APP_SECRET}\""), "app_secret = \"env:SWITCHBOARD_TEST_UNSET_SECRET_VAR\"");
    let cfg = switchboard::config::Config::parse(&text, "t").unwrap();
    let d = TestDaemon::start_with(cfg, switchboard::clock::ManualClock::new(T0)).await;
    let body = fixture("text.json");
    let resp = d.signed_webhook(&body).await;
    assert_eq!(resp.status(), 503);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("SWITCHBOARD_TEST_UNSET_SECRET_VAR"), "{v}");
    let ready = d.http.get(format!("{}/readyz", d.base)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let r: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(r["accounts"]["wa-main"]["ready"], false);
    assert_eq!(d.daemon.app().store.inbox_len().await.unwrap(), 0);
    d.stop().await;
}
