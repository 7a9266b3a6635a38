//! Contacts and tags: CRUD, tagging, search, tag filter and cursor paging.

use heydoc_testkit::{json, on_both_backends, Backend, TestApp};

async fn contact_and_tag_lifecycle(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let (_, vip) = api
        .post("/api/tags", &json!({"name": "VIP", "color": "#FF0000"}))
        .await;
    let vip = vip["data"]["id"].as_i64().unwrap();
    let (s, created) = api
        .post(
            "/api/contacts",
            &json!({"phone": "+91 98765 43210", "name": "Priya", "attributes": {"clinic": "Pune"}, "tag_ids": [vip]}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["data"]["phone"], "919876543210");
    assert_eq!(
        created["data"]["tags"],
        json!([{"id": vip, "name": "VIP", "color": "#ff0000"}])
    );
    assert_eq!(created["data"]["attributes"], json!({"clinic": "Pune"}));
    assert_eq!(
        api.post("/api/contacts", &json!({"phone": "919876543210"}))
            .await
            .0,
        409
    );

    let (s, updated) = api
        .put(
            "/api/contacts/919876543210",
            &json!({"name": "Priya S", "opted_out": true, "tag_ids": []}),
        )
        .await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["data"]["name"], "Priya S");
    assert_eq!(updated["data"]["opted_out"], true);
    assert_eq!(updated["data"]["tags"], json!([]));

    let (s, _) = api
        .put(
            "/api/contacts/919876543210/tags",
            &json!({"tag_ids": [vip]}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, tags) = api.get("/api/tags").await;
    assert_eq!(tags[0]["contact_count"], 1);
    let (s, _) = api
        .delete(&format!("/api/contacts/919876543210/tags/{vip}"))
        .await;
    assert_eq!(s, 200);
    let (_, contact) = api.get("/api/contacts/919876543210").await;
    assert_eq!(contact["tags"], json!([]));

    let (s, renamed) = api
        .put(
            &format!("/api/tags/{vip}"),
            &json!({"name": "Gold", "color": "#ffd700"}),
        )
        .await;
    assert_eq!((s, renamed["data"]["name"].as_str()), (200, Some("Gold")));
    api.post(
        &format!("/api/contacts/919876543210/tags/{vip}"),
        &json!({}),
    )
    .await;
    assert_eq!(api.delete(&format!("/api/tags/{vip}")).await.0, 200);
    let (_, contact) = api.get("/api/contacts/919876543210").await;
    assert_eq!(
        contact["tags"],
        json!([]),
        "deleting a tag takes it off contacts"
    );
    assert_eq!(api.delete(&format!("/api/tags/{vip}")).await.0, 404);

    assert_eq!(api.delete("/api/contacts/919876543210").await.0, 200);
    assert_eq!(api.get("/api/contacts/919876543210").await.0, 404);
    assert_eq!(api.delete("/api/contacts/919876543210").await.0, 404);
}

async fn list_pages_searches_and_filters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let (_, tag) = api.post("/api/tags", &json!({"name": "Diabetes"})).await;
    let tag = tag["data"]["id"].as_i64().unwrap();
    for i in 0..25 {
        let mut body = json!({"phone": format!("1555000{i:04}"), "name": format!("Patient {i}")});
        if i % 5 == 0 {
            body["tag_ids"] = json!([tag]);
        }
        assert_eq!(api.post("/api/contacts", &body).await.0, 201);
    }
    // Page through everything, 10 at a time, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/contacts?limit=10&cursor={c}"),
            None => "/api/contacts?limit=10".into(),
        };
        let res = api.client.get(api.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        cursor = res
            .headers()
            .get("x-next-cursor")
            .map(|v| v.to_str().unwrap().to_string());
        let page: serde_json::Value = res.json().await.unwrap();
        seen.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|c| c["phone"].as_str().unwrap().to_string()),
        );
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 25);
    assert_eq!(seen[0], "15550000024", "newest first");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 25, "no contact twice across pages");

    let (_, found) = api.get("/api/contacts?q=patient%2012").await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    let (_, found) = api.get("/api/contacts?q=555000002").await;
    assert_eq!(found.as_array().unwrap().len(), 5, "phone substring");
    let (_, found) = api.get("/api/contacts?q=100%25").await;
    assert_eq!(found, json!([]), "LIKE wildcards are literal");
    let (_, tagged) = api.get(&format!("/api/contacts?tag={tag}")).await;
    assert_eq!(tagged.as_array().unwrap().len(), 5);
    assert_eq!(api.get("/api/contacts?cursor=garbage").await.0, 400);
}

/// Attributes hold any JSON the database can give back as it was given: extreme numbers and
/// unusual keys round-trip or are refused with a 422, never a 500.
async fn extreme_attributes_round_trip(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let body = r#"{"phone": "15550111222", "attributes": {"max": 1.7976931348623157e+308,
        "min": -1.7976931348623155e+308, "tiny": 4.274856602749018e-211, "big": 18446744073709551615,
        "neg": -9223372036854775808, "\u0001key\u00e9": [[null, -4999, 2.952892644765569e-20]],
        "nested": {"": true}}}"#;
    let res = api
        .client
        .post(api.url("/api/contacts"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let created: serde_json::Value = res.json().await.unwrap();
    assert_eq!(status, 201, "{created}");
    let (s, got) = api.get("/api/contacts/15550111222").await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["attributes"], created["data"]["attributes"]);
    assert_eq!(got["attributes"]["max"], json!(f64::MAX));
    let (s, list) = api.get("/api/contacts?search=15550111222").await;
    assert_eq!(s, 200, "{list}");
}

on_both_backends!(
    contact_and_tag_lifecycle,
    list_pages_searches_and_filters,
    extreme_attributes_round_trip
);
