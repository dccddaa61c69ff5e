//! `wordcount`: a batch job counting words over text files, and stream jobs counting words in a
//! watched directory, arriving on a TCP socket and in the values of a Kafka topic's records
//! (`kafka.*` keys; output under `batch-BBBBBB/`, exactly once across restarts with
//! `kafka.checkpoint`, see `neptune_core::kafka`), in the same app. With `kafka.sink.topic` the
//! stream jobs write their counts to that topic instead (key: the word, value: its count in the
//! micro-batch, as text), exactly once per micro-batch (`neptune_core::kafka::sink`).
//!
//! Keys: see the settings below (`neptune config --app wordcount`, `docs/config.md`). With both
//! stream sources and `stream.output`, each job writes under its own subdirectory (`watch/`,
//! `socket/`). The watched directory counts each file exactly once (see [`WatchedDir`]; drop files
//! atomically, by renaming them in from a name starting with `.`); the socket's receiver runs on
//! one executor, which the micro-batch's tasks prefer (see [`neptune_core::source_socket`]).
//! Words are maximal runs of non-whitespace, case kept.

use neptune_core::config::{Choice, Meta, Text, UInt};
use neptune_core::source::{Malformed, json_lines_with, text_files};
use neptune_core::source_watch::{Cleanup, WatchedDir};
use neptune_core::{App, Dataset, kafka};

/// The batch input.
pub static INPUT: Text = Text::new(Meta::new(
    "input",
    "Directory or glob of text files; enables the batch job `count`.",
));
/// The batch output.
pub static OUTPUT: Text = Text::new(Meta::new(
    "output",
    "Directory where `count` writes `run-RRRRRR/part-PPPPP` files of `word<TAB>count` lines (else the counts are only summarised in the report).",
));
/// Input format.
pub static FORMAT: Text = Text::new(Meta::new(
    "input.format",
    "`text`: every line is text; `jsonl`: every line is a JSON object whose `text` field is the text.",
))
.default("text");
/// Malformed `jsonl` lines.
pub static MALFORMED: Choice<Malformed> = Choice::new(
    Meta::new(
        "input.malformed",
        "What a `jsonl` line that does not parse does: fail the job naming file and line, or be skipped and counted.",
    ),
    Malformed::Fail,
);
/// Reduce partitions of `count`.
pub static PARTITIONS: UInt = UInt::new(
    Meta::new("partitions", "Reduce partitions of `count`."),
    1,
    100_000,
)
.default(4);
/// The watched directory.
pub static STREAM_DIR: Text = Text::new(Meta::new(
    "stream.dir",
    "Directory watched by the stream job `watch`: each micro-batch counts the words of the files that appeared since the previous one, each file exactly once.",
));
/// What happens to counted files.
pub static CLEANUP: Choice<Cleanup> = Choice::new(
    Meta::new(
        "stream.dir.cleanup",
        "Counted files are kept under `stream.dir/.neptune/done/` (`archive`) or deleted once their micro-batch commits (`delete`).",
    ),
    Cleanup::Archive,
);
/// Stream partitions.
pub static STREAM_PARTITIONS: UInt = UInt::new(
    Meta::new("stream.partitions", "Partitions of the stream jobs."),
    1,
    10_000,
)
.default(2);
/// Stream output.
pub static STREAM_OUTPUT: Text = Text::new(Meta::new(
    "stream.output",
    "Directory where the stream jobs write each micro-batch's counts as `count` does (else the result is the number of distinct words).",
));
/// The socket source.
pub static SOCKET: Text = Text::new(Meta::new(
    "stream.socket",
    "`host:port` of a TCP server sending text lines (e.g. `nc -lk 9999`): the stream job `socket` counts the words received in each micro-batch.",
));

/// One record of a `jsonl` input.
#[derive(serde::Deserialize)]
struct Line {
    text: String,
}

/// The lines of text of the batch input, in its format.
fn input_lines(
    input: &str,
    format: &str,
    policy: Malformed,
) -> neptune_core::Result<Dataset<String>> {
    match format {
        "text" => text_files(input),
        "jsonl" => Ok(json_lines_with::<Line>(input, policy)?.map(|l| l.text)),
        other => Err(format!(
            "invalid value for config key `input.format`: `{other}` (expected `text` or `jsonl`)"
        )
        .into()),
    }
}

fn words(lines: &Dataset<String>) -> Dataset<(String, u64)> {
    lines.flat_map(|l| {
        l.split_whitespace()
            .map(|w| (w.to_string(), 1u64))
            .collect::<Vec<_>>()
    })
}

/// Build the wordcount app.
///
/// # Errors
/// An error naming the key at fault (no input at all, or an input matching no files).
pub fn build(app: &mut App) -> neptune_core::Result<()> {
    let c = app.config();
    let input = INPUT.get_opt(c)?.unwrap_or_default();
    let output = OUTPUT.get_opt(c)?.unwrap_or_default();
    let format = FORMAT.get_opt(c)?.unwrap_or_default();
    let policy = MALFORMED.get(c)?;
    let partitions = PARTITIONS.get(c)? as u32;
    let dir = STREAM_DIR.get_opt(c)?.unwrap_or_default();
    let stream_parts = STREAM_PARTITIONS.get(c)? as u32;
    let stream_output = STREAM_OUTPUT.get_opt(c)?.unwrap_or_default();
    let socket = SOCKET.get_opt(c)?.unwrap_or_default();
    let cleanup = CLEANUP.get(c)?;
    let topic = kafka::keys::TOPIC.get_opt(c)?.unwrap_or_default();
    // Read even without a topic (the error is then moot), so the reference lists the keys.
    let kafka_cfg = kafka::source::SourceConfig::from_config("kafka", c, stream_parts);
    // Named after each stream job below (the name is in the records' marks).
    let sink = kafka::sink::SinkConfig::from_config("", c);
    if input.is_empty() && dir.is_empty() && socket.is_empty() && topic.is_empty() {
        return Err(
            "set `input` (text files to count), `stream.dir` (a watched directory), \
             `stream.socket` (host:port sending lines) and/or `kafka.topic` (a Kafka topic)"
                .into(),
        );
    }
    let kafka_cfg = (!topic.is_empty()).then_some(kafka_cfg).transpose()?;
    let sink = sink?;
    if sink.is_some() && !stream_output.is_empty() {
        return Err(
            "set `stream.output` (files) or `kafka.sink.topic` (a Kafka topic) for the \
             stream jobs' counts, not both"
                .into(),
        );
    }
    let both = [&dir, &socket, &topic]
        .iter()
        .filter(|s| !s.is_empty())
        .count()
        > 1;
    let stream_out = |job: &str| -> Option<String> {
        match (stream_output.is_empty(), both) {
            (true, _) => None,
            (false, false) => Some(stream_output.clone()),
            (false, true) => Some(format!("{stream_output}/{job}")),
        }
    };
    // A stream job's action: its counts to the sink topic, to files or only counted.
    let stream_action = |job: &str, counts: Dataset<(String, u64)>| match (&sink, stream_out(job)) {
        (Some(s), _) => {
            let s = kafka::sink::SinkConfig {
                name: job.to_string(),
                ..s.clone()
            };
            counts.write_kafka(s, |(w, n)| {
                (Some(w.as_bytes().to_vec()), n.to_string().into_bytes())
            })
        }
        (None, Some(out)) => counts.write_lines(out, |(w, n)| format!("{w}\t{n}")),
        (None, None) => counts.count(),
    };
    if !input.is_empty() {
        let lines = input_lines(&input, &format, policy).map_err(|e| format!("input: {e}"))?;
        let counts = words(&lines).reduce_by_key(partitions, |a, b| a + b);
        if output.is_empty() {
            app.batch("count", counts.count()).runs(Some(1));
        } else {
            app.batch(
                "count",
                counts.write_lines(output, |(w, n)| format!("{w}\t{n}")),
            )
            .runs(Some(1));
        }
    }
    if !dir.is_empty() {
        let watched = WatchedDir::new(&dir)
            .map_err(|e| format!("stream.dir: {e}"))?
            .with_cleanup(cleanup);
        let counts = words(&watched.lines(stream_parts)).reduce_by_key(stream_parts, |a, b| a + b);
        let action = stream_action("watch", counts);
        app.stream("watch", action)
            .on_result(move |ctx, _| Ok(watched.commit(ctx.run)?));
    }
    if !socket.is_empty() {
        let lines = app
            .socket_lines("socket", &socket, stream_parts)
            .map_err(|e| format!("invalid value for config key `stream.socket`: {e}"))?;
        let counts = words(&lines).reduce_by_key(stream_parts, |a, b| a + b);
        let action = stream_action("socket", counts);
        app.stream("socket", action);
    }
    if !topic.is_empty() {
        // Each record's value is text; one that is not UTF-8 is malformed (`input.malformed`).
        let source = app.kafka_source(kafka_cfg.expect("read with the topic"))?;
        let lines = source.lines(policy);
        let counts = words(&lines).reduce_by_key(stream_parts, |a, b| a + b);
        let action = stream_action("kafka", counts);
        app.stream("kafka", action);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use neptune_core::app::build_app;
    use neptune_core::config::Config;
    use serde_yaml::Value;
    use std::sync::Arc;

    /// `examples/k8s/wordcount-kafka.yaml`: its config builds this app (every key read, the
    /// credentials checked) once its files exist, and every file it names is under a mount of
    /// the pod templates — the credentials in both, the checkpoint in the driver's.
    #[test]
    fn the_kubernetes_kafka_example_builds_and_mounts_what_it_names() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/k8s/wordcount-kafka.yaml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let app = serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .find(|d: &Value| d["kind"] == "StreamBatchApp")
            .expect("a StreamBatchApp");
        let spec = &app["spec"];
        assert_eq!(spec["app"]["name"], "wordcount");
        let mounts = |role: &str| -> Vec<String> {
            spec[role]["podTemplate"]["spec"]["containers"][0]["volumeMounts"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|m| m["mountPath"].as_str().unwrap().to_string())
                .collect()
        };
        let under = |p: &str, role: &str| mounts(role).iter().any(|m| p.starts_with(m.as_str()));
        let dir = tempfile::tempdir().unwrap();
        let ca = neptune_net::issue::issue("kafka-test", &[], 1)
            .unwrap()
            .ca_pem;
        let mut pairs = Vec::new();
        for (k, v) in spec["app"]["config"].as_mapping().unwrap() {
            let (k, v) = (k.as_str().unwrap(), v.as_str().unwrap());
            let local = dir.path().join(k).display().to_string();
            let v = match k {
                "kafka.ssl.ca_file" | "kafka.sasl.password_file" => {
                    assert!(under(v, "driver") && under(v, "executor"), "{k}={v}");
                    let text = if k == "kafka.ssl.ca_file" {
                        ca.as_str()
                    } else {
                        "pw\n"
                    };
                    std::fs::write(&local, text).unwrap();
                    local
                }
                "kafka.checkpoint" => {
                    assert!(under(v, "driver"), "{k}={v}");
                    local
                }
                _ => v.to_string(),
            };
            pairs.push((k.to_string(), v));
        }
        let cfg = Arc::new(Config::from_pairs(pairs));
        let app = build_app(crate::apps::BUILTIN, "wordcount", cfg).unwrap();
        app.config().check_all_used().unwrap();
        assert_eq!(
            app.jobs()
                .iter()
                .map(|j| j.name.as_str())
                .collect::<Vec<_>>(),
            ["kafka"]
        );
        let security = &app.kafka_sources()[0].config().connection.security;
        assert_eq!(
            security.protocol(),
            neptune_core::kafka::security::Protocol::SaslSsl
        );
    }
}
