//! Watch semantics against the twin over HTTPS with kube-rs: raw watches see ADDED, MODIFIED,
//! DELETED and BOOKMARK events; a watch from a compacted resourceVersion gets `410`; and
//! `kube::runtime::watcher` (what controllers use) survives that 410 by relisting.

use crate::common;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use serde_json::json;

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"app": "w"}}, "data": {"v": value}}),
    )
    .unwrap()
}

#[tokio::test]
async fn raw_watch_sees_every_change_and_a_compacted_version_is_gone() {
    let twin = common::twin().await;
    let api: Api<ConfigMap> = Api::namespaced(twin.client().await.unwrap(), "default");
    let list = api.list(&Default::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut events = api
        .watch(&WatchParams::default().labels("app=w"), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("a", "1"))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match events.try_next().await.unwrap().expect("stream open") {
            WatchEvent::Added(c) => seen.push(("ADDED", c.data.unwrap()["v"].clone())),
            WatchEvent::Modified(c) => seen.push(("MODIFIED", c.data.unwrap()["v"].clone())),
            WatchEvent::Deleted(c) => seen.push(("DELETED", c.data.unwrap()["v"].clone())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            ("ADDED", "1".to_string()),
            ("MODIFIED", "2".into()),
            ("DELETED", "2".into())
        ]
    );

    // Compaction: a watch from before it gets 410 Expired as an ERROR event.
    twin.state().store.compact();
    let mut stale = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stale.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410, "{e:?}"),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn runtime_watcher_survives_a_410_by_relisting() {
    let twin = common::twin().await;
    let api: Api<ConfigMap> = Api::namespaced(twin.client().await.unwrap(), "default");
    api.create(&PostParams::default(), &cm("before", "0"))
        .await
        .unwrap();
    // Short server-side watches, no bookmarks: the watcher re-watches every second from the
    // last resourceVersion it saw.
    let config = watcher::Config::default()
        .labels("app=w")
        .timeout(1)
        .disable_bookmarks();
    let mut stream = watcher(api.clone(), config).boxed();
    let mut inits = 0;
    let mut initial = Vec::new();
    loop {
        match stream.try_next().await.unwrap().unwrap() {
            watcher::Event::Init => inits += 1,
            watcher::Event::InitApply(c) => initial.push(c.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!((inits, initial), (1, vec!["before".to_string()]));
    // A change the watcher does not see (other labels), then compaction: the watcher's next
    // watch asks for a resourceVersion older than the history, gets 410, and must relist.
    let noise: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "noise"}})).unwrap();
    api.create(&PostParams::default(), &noise).await.unwrap();
    twin.state().store.compact();
    // The watcher reports the 410 (controllers log it and back off), then relists.
    let relisted = tokio::time::timeout(common::DEADLINE, async {
        let mut gone = false;
        while let Some(ev) = stream.next().await {
            match ev {
                Err(e) => gone |= format!("{e:?}").contains("code: 410"),
                Ok(watcher::Event::Init) => return gone,
                Ok(_) => {}
            }
        }
        panic!("the watcher stream ended");
    })
    .await;
    assert_eq!(
        relisted.ok(),
        Some(true),
        "the watcher got 410, then relisted"
    );
    api.create(&PostParams::default(), &cm("after", "1"))
        .await
        .unwrap();
    let seen = tokio::time::timeout(common::DEADLINE, async {
        while let Some(ev) = stream.next().await {
            if let Ok(watcher::Event::InitApply(c) | watcher::Event::Apply(c)) = ev
                && c.metadata.name.as_deref() == Some("after")
            {
                return;
            }
        }
    })
    .await;
    assert!(seen.is_ok(), "the watcher keeps watching after the relist");
}
