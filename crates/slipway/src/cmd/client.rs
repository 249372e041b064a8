//! Commands that act through a running `slipway serve`: `trigger` and `cancel`. The token comes
//! from `SLIPWAY_TOKEN` and is sent only as a bearer header.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// The environment variable the CLI reads its API token from.
pub const TOKEN_ENV: &str = "SLIPWAY_TOKEN";

struct Client {
    http: reqwest::Client,
    server: String,
    token: Option<String>,
}

impl Client {
    fn new(server: &str) -> Result<Client> {
        let server = server.trim_end_matches('/').to_string();
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            bail!("--server must be an http:// or https:// URL, not '{server}'");
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .context("cannot set up the HTTP client")?;
        let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
        Ok(Client {
            http,
            server,
            token,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}{path}", self.server);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let response = req
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.server))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let message = value
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            let hint = if status == reqwest::StatusCode::UNAUTHORIZED && self.token.is_none() {
                format!(" (set {TOKEN_ENV})")
            } else {
                String::new()
            };
            bail!("server refused ({status}): {message}{hint}");
        }
        Ok(value)
    }
}

pub async fn trigger(
    server: &str,
    job: &str,
    milestone: u32,
    commit: Option<String>,
    wait: bool,
    json_out: bool,
) -> Result<ExitCode> {
    let client = Client::new(server)?;
    let mut body = json!({ "milestone": milestone });
    if let Some(c) = commit {
        body["commit"] = json!(c);
    }
    let queued = client
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/jobs/{job}/runs"),
            Some(body),
        )
        .await?;
    let id = queued
        .get("run_id")
        .and_then(Value::as_i64)
        .context("the server's answer has no run_id")?;
    if !wait {
        if json_out {
            println!("{}", serde_json::to_string_pretty(&queued)?);
        } else {
            println!(
                "queued run {id}: {}",
                queued.get("url").and_then(Value::as_str).unwrap_or("")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("queued run {id}; waiting for it to end");
    loop {
        let detail = client
            .call(reqwest::Method::GET, &format!("/api/v1/runs/{id}"), None)
            .await?;
        let status = detail["run"]["status"]
            .as_str()
            .unwrap_or("unknown")
            .to_string();
        if !matches!(status.as_str(), "queued" | "running") {
            if json_out {
                println!("{}", serde_json::to_string_pretty(&detail)?);
            } else {
                println!(
                    "run {id} {}: {status}",
                    detail["run"]["instance"].as_str().unwrap_or("")
                );
                if let Some(builds) = detail["builds"].as_array() {
                    for b in builds {
                        let err = b["error"]
                            .as_str()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default();
                        println!(
                            "  {:<24} {}{err}",
                            b["name"].as_str().unwrap_or(""),
                            b["status"].as_str().unwrap_or("")
                        );
                    }
                }
            }
            return Ok(match status.as_str() {
                "success" => ExitCode::SUCCESS,
                "cancelled" => ExitCode::from(130),
                _ => ExitCode::from(1),
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub async fn cancel(server: &str, run: i64) -> Result<ExitCode> {
    let client = Client::new(server)?;
    let result = client
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/runs/{run}/cancel"),
            None,
        )
        .await?;
    println!(
        "run {run}: {}",
        result
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
    );
    Ok(ExitCode::SUCCESS)
}
