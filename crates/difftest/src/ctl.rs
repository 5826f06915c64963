//! Operator commands for a scenario's broker, given as `rabbitmqctl` arguments: on the
//! reference they run as `rabbitmqctl -n <node> ARGS` (through `scripts/rabbitmq-ref.sh ctl`),
//! on Warren as `warren --data-dir <dir> ctl ARGS`. A scenario sets up users, vhosts,
//! permissions and limits on both brokers with the same arguments.

use std::process::Stdio;
use std::time::Duration;

/// How long one command may take (rabbitmqctl starts an Erlang VM: about a second).
pub const CTL_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `prefix ARGS`. Ok with stdout, or Err with why it failed (stderr's last lines).
pub async fn run(prefix: &[String], args: &[&str]) -> Result<String, String> {
    let Some((program, fixed)) = prefix.split_first() else {
        return Err("no operator command for this broker (DIFF_RABBITMQ_CTL / DIFF_WARREN_CTL)".into());
    };
    let child = tokio::process::Command::new(program)
        .args(fixed)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A command that outlives its deadline must not linger.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let out = match tokio::time::timeout(CTL_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("{program}: {e}")),
        Err(_) => return Err(format!("{program} did not finish within {CTL_TIMEOUT:?}")),
    };
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(2)..].join(" / ");
    Err(format!("exit status {}: {tail}", out.status.code().unwrap_or(-1)))
}

/// The command prefix from an environment variable (split on whitespace), for brokers the
/// test did not start.
pub fn prefix_from_env(var: &str) -> Vec<String> {
    std::env::var(var).unwrap_or_default().split_whitespace().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[tokio::test]
    async fn runs_the_prefix_with_the_arguments() {
        assert_eq!(run(&prefix(&["echo", "-n"]), &["add_user", "u"]).await, Ok("add_user u".to_string()));
        let failed = run(&prefix(&["sh", "-c", "echo why >&2; exit 3"]), &[]).await;
        assert_eq!(failed, Err("exit status 3: why".to_string()));
        assert!(run(&[], &["list_users"]).await.unwrap_err().contains("DIFF_RABBITMQ_CTL"));
    }
}
