use super::samples::{self, NOW};
use super::*;

const HOSTILE: &str = "<script>alert('x')</script>";

fn dash() -> Dashboard {
    Dashboard::new().expect("templates compile")
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// The only script element is ours, and the hostile text arrived escaped.
fn assert_escaped(html: &str) {
    assert_eq!(
        count(html, "<script"),
        1,
        "exactly one <script> (ours):\n{html}"
    );
    assert!(html.contains("<script src=\"/static/slipway.js?v="));
    assert!(!html.contains("alert('x')</script>"));
    assert!(
        html.contains("&lt;script&gt;alert("),
        "escaped text missing:\n{html}"
    );
}

#[test]
fn home_has_a_column_per_job_and_a_row_per_milestone() {
    let v = samples::home(30);
    let html = dash().home(&v).unwrap();
    for job in samples::JOBS {
        assert!(html.contains(&format!("<th scope=\"col\" class=\"job\">{job}</th>")));
    }
    assert_eq!(count(&html, "<tr id=\"row-"), 30);
    for m in 95..=124 {
        assert!(html.contains(&format!("id=\"row-{m}\"")));
        assert!(html.contains(&format!("<a href=\"/milestones/{m}\">M{m}</a>")));
    }
    // 30 rows x 5 jobs minus presubmit (28 rows) and docs (29 rows) that do not run there
    let runs = v.rows.iter().flat_map(|r| &r.cells).flatten().count();
    assert_eq!(runs, 150 - 28 - 29);
    assert_eq!(count(&html, "class=\"run st-"), runs);
    assert_eq!(count(&html, "<td class=\"cell none\">"), 57);
    let first = v.rows[0].cells[0].as_ref().unwrap();
    assert!(html.contains(&format!("href=\"/runs/{}\"", first.run_id)));
    assert!(html.contains(first.commit_short.as_deref().unwrap()));
    assert!(html.contains("Staging candidate") && html.contains("Production"));
    assert!(html.contains("class=\"inactive\""));
    assert!(html.contains("2 running") && html.contains("3 queued"));
    assert!(html.contains("data-refresh=\"10\""));
    // newest first, as given
    assert!(html.find("row-124").unwrap() < html.find("row-95").unwrap());
}

#[test]
fn home_drift_banner_lists_milestones_only_when_there_is_drift() {
    let d = dash();
    let html = d.home(&samples::home(4)).unwrap();
    assert!(html.contains("id=\"drift-banner\""));
    assert!(html.contains("<a href=\"/milestones/121\">M121</a>."));
    assert!(html.contains("class=\" drift\""), "row marked:\n{html}");

    let mut v = samples::home(3);
    v.drift_milestones.clear();
    for r in &mut v.rows {
        r.drift = false;
    }
    let html = d.home(&v).unwrap();
    assert!(!html.contains("drift-banner"));
    assert!(!html.contains(">drift<"));
}

#[test]
fn home_marks_a_candidate_newer_than_production() {
    let mut v = samples::home(2);
    v.rows[0].release = None;
    let staged = v.rows[1].candidate.as_ref().unwrap().id;
    v.rows[1].release.as_mut().unwrap().candidate_id = staged;
    let html = dash().home(&v).unwrap();
    assert!(html.contains("href=\"/milestones/124\" class=\"cand pending\""));
    assert!(html.contains("href=\"/milestones/123\" class=\"cand\""));
}

#[test]
fn home_refuses_rows_not_aligned_with_the_jobs() {
    let mut v = samples::home(2);
    v.rows[1].cells.pop();
    let err = dash().home(&v).unwrap_err();
    assert!(matches!(
        err,
        DashboardError::MisalignedRow {
            milestone: 123,
            cells: 4,
            jobs: 5
        }
    ));
}

#[test]
fn empty_home_says_so() {
    let mut v = samples::home(0);
    v.jobs.clear();
    let html = dash().home(&v).unwrap();
    assert!(html.contains("No milestones in the branch table yet."));
    assert!(!html.contains("id=\"matrix\""));
}

#[test]
fn hostile_strings_are_escaped_on_every_page() {
    let d = dash();

    let mut home = samples::home(2);
    home.jobs[0] = HOSTILE.into();
    home.rows[0].branch = HOSTILE.into();
    home.rows[0].cells[1].as_mut().unwrap().status = HOSTILE.into();
    home.page.project = HOSTILE.into();
    assert_escaped(&d.home(&home).unwrap());

    let mut runs = samples::runs();
    runs.runs[2].error = Some(HOSTILE.into());
    runs.filter_job = Some(HOSTILE.into());
    let html = d.runs(&runs).unwrap();
    assert_escaped(&html);
    assert!(html.contains("job=%3Cscript%3Ealert%28%27x%27%29%3C%2Fscript%3E"));

    let mut run = samples::run(false);
    run.builds[1].name = HOSTILE.into();
    run.builds[2].needs = vec![HOSTILE.into()];
    run.builds[4].error = Some(format!("{HOSTILE}\"onmouseover=\"x"));
    run.run.error = Some(HOSTILE.into());
    let html = d.run(&run).unwrap();
    assert_escaped(&html);
    assert!(!html.contains("\"onmouseover=\""));
    assert!(html.contains("/builds/%3Cscript%3Ealert%28%27x%27%29%3C%2Fscript%3E/log"));

    let mut rel = samples::release(true);
    rel.candidates[0].digest = HOSTILE.into();
    rel.candidates[1].suites[0].name = HOSTILE.into();
    rel.history[1].promoted_by = HOSTILE.into();
    rel.audit = Some(AuditView {
        checked_at: NOW.into(),
        drift: true,
        lines: vec![HOSTILE.into()],
        error: Some(HOSTILE.into()),
    });
    rel.unfinished_promotion = Some(HOSTILE.into());
    assert_escaped(&d.release(&rel).unwrap());

    let mut login = samples::login();
    login.error = Some(HOSTILE.into());
    login.next = Some(format!("/\"><{HOSTILE}"));
    assert_escaped(&d.login(&login).unwrap());

    assert_escaped(&d.error(500, HOSTILE).unwrap());
}

#[test]
fn run_list_links_runs_and_pages_with_the_filters() {
    let d = dash();
    let mut v = samples::runs();
    let html = d.runs(&v).unwrap();
    assert_eq!(count(&html, "<tr id=\"run-"), 25);
    assert!(html.contains("<a href=\"/runs/5000\">#5000</a>"));
    assert!(html.contains("href=\"/runs?before=4975\" id=\"older\""));
    assert!(html.contains("step 2 exited with status 1"));
    assert!(!html.contains("clear-filters"));

    v.filter_job = Some("lxd boot".into());
    v.filter_milestone = Some(123);
    let html = d.runs(&v).unwrap();
    assert!(html.contains("href=\"/runs?before=4975&amp;job=lxd%20boot&amp;milestone=123\""));
    assert!(html.contains("href=\"/runs?job=lxd%20boot&amp;milestone=123\" id=\"newest\""));
    assert!(html.contains("value=\"lxd boot\""));
    assert!(html.contains("id=\"clear-filters\""));

    v.older_than = None;
    v.runs.clear();
    let html = d.runs(&v).unwrap();
    assert!(!html.contains("id=\"older\""));
    assert!(html.contains("No runs match these filters."));
}

#[test]
fn run_page_shows_the_dag_facts_and_log_panels() {
    let v = samples::run(false);
    let html = dash().run(&v).unwrap();
    assert_eq!(count(&html, "class=\"dag-col\""), 5, "{html}");
    for b in &v.builds {
        assert!(html.contains(&format!("id=\"build-{}\"", b.name)));
        assert!(html.contains(&format!("<pre id=\"log-{}\" class=\"logtext\"", b.name)));
        assert!(html.contains(&format!(
            "data-log-url=\"/api/v1/runs/4998/builds/{}/log\"",
            b.name
        )));
    }
    assert!(html.contains("crostini-guest&#x2f;124&#x2f;continuous"));
    assert!(html.contains("3f9c2a17be04d5e6f7a8b9c0d1e2f3a4b5c6d7e8"));
    assert!(html.contains("<a href=\"/runs/4990\" id=\"retry-of\">#4990</a>"));
    assert!(html.contains("step 2 (boot test) exited with status 1"));
    // given duration wins; otherwise computed from the times
    assert!(html.contains("<span class=\"dur\">2m 00s</span>"));
    assert!(html.contains("<span class=\"dur\">5m 00s</span>"));
    assert!(html.contains("data-live=\"false\""));
    assert!(!html.contains("id=\"cancel-run\""));
    assert!(!html.contains("bypassed"));
}

#[test]
fn live_run_can_be_cancelled_and_is_followed() {
    let v = samples::run(true);
    let html = dash().run(&v).unwrap();
    assert!(html.contains("id=\"cancel-run\""));
    assert!(html.contains("data-live=\"true\""));
    assert!(html.contains("id=\"live-pill\""));
    // a running build's duration runs up to the page's now
    assert!(html.contains("<span class=\"dur\">7m 00s</span>"));

    let mut v = samples::run(true);
    v.can_cancel = false;
    assert!(!dash().run(&v).unwrap().contains("id=\"cancel-run\""));
}

#[test]
fn untrusted_run_shows_bypassed_builds_dashed_and_without_logs() {
    let v = samples::untrusted_run();
    let html = dash().run(&v).unwrap();
    for name in ["apt_signer", "publish"] {
        assert!(html.contains(&format!(
            "<div class=\"node bypassed st-bypassed\" id=\"build-{name}\""
        )));
        assert!(!html.contains(&format!("id=\"log-{name}\"")));
    }
    assert!(html.contains("2 privileged builds (apt_signer, publish) bypassed"));
    assert!(html.contains("its dependents get the inputs of apt_repo, lxd_container"));
}

#[test]
fn release_page_shows_staging_beside_production() {
    let v = samples::release(false);
    let html = dash().release(&v).unwrap();
    let staging =
        &html[html.find("id=\"staging\"").unwrap()..html.find("id=\"production\"").unwrap()];
    assert!(staging.contains("#899"));
    assert!(staging.contains(&v.candidates[0].digest));
    let production =
        &html[html.find("id=\"production\"").unwrap()..html.find("<h2>Candidates").unwrap()];
    assert!(production.contains("candidate <strong>#897</strong>"));
    assert!(production.contains(&v.candidates[2].digest));
    assert!(production.contains("✓ apt-install"));
    assert_eq!(count(&html, "<tr id=\"candidate-"), 4);
    assert!(html.contains("✗ lxd-boot <span class=\"muted\">10/12</span>"));
    assert!(html.contains("kind-rollback"));
    assert!(html.contains("no drift"));
    // a viewer gets no buttons
    assert!(!html.contains("class=\"promote\""));
    assert!(!html.contains("id=\"rollback\""));
    assert!(!html.contains("drift-banner"));
}

#[test]
fn releasers_get_promote_buttons_for_candidates_not_live_and_a_rollback() {
    let v = samples::release(true);
    let html = dash().release(&v).unwrap();
    for id in [899, 898, 896] {
        assert!(html.contains(&format!(
            "<button type=\"button\" class=\"promote\" data-candidate=\"{id}\" data-milestone=\"123\">"
        )));
    }
    assert!(!html.contains("data-candidate=\"897\""));
    assert!(html.contains("id=\"rollback\" class=\"danger\" data-milestone=\"123\""));

    // nothing released yet: nothing to roll back
    let mut v = samples::release(true);
    v.history.clear();
    v.live = None;
    let html = dash().release(&v).unwrap();
    assert!(!html.contains("id=\"rollback\""));
    assert!(html.contains("Nothing released yet."));
}

#[test]
fn release_page_drift_unfinished_and_empty_states() {
    let mut v = samples::release(true);
    v.audit = Some(AuditView {
        checked_at: samples::at(30),
        drift: true,
        lines: vec![
            "production apt: dists/stable/InRelease differs from the release".into(),
            "production lxd: streams/v1/index.json missing".into(),
        ],
        error: None,
    });
    v.unfinished_promotion = Some("promotion 12 of candidate 899 started by alice".into());
    let html = dash().release(&v).unwrap();
    assert!(html.contains("id=\"drift-banner\""));
    assert!(html.contains(">30m ago</time> found buckets serving"));
    assert_eq!(count(&html, "<span class=\"line\">"), 2);
    assert!(html.contains("streams&#x2f;v1&#x2f;index.json missing"));
    assert!(html.contains("id=\"unfinished-promotion\""));
    assert!(html.contains("promotion 12 of candidate 899 started by alice"));

    let mut v = samples::release(false);
    v.candidates.clear();
    v.history.clear();
    v.live = None;
    v.audit = None;
    let html = dash().release(&v).unwrap();
    assert!(html.contains("No candidate yet"));
    assert!(html.contains("No releases yet."));
    assert!(html.contains("No audit has run for this milestone yet."));
}

/// The text between two markers of a page.
fn between<'a>(html: &'a str, from: &str, to: &str) -> &'a str {
    let start = html
        .find(from)
        .unwrap_or_else(|| panic!("no {from}:\n{html}"));
    let end = start
        + html[start..]
            .find(to)
            .unwrap_or_else(|| panic!("no {to} after {from}"));
    &html[start..end]
}

fn policy_panel(html: &str) -> &str {
    between(html, "<section class=\"card policy", "</section>")
}

#[test]
fn release_policy_panel_sums_the_policy_up_in_one_line() {
    let html = dash().release(&samples::release(true)).unwrap();
    let panel = policy_panel(&html);
    let line = between(panel, "id=\"policy-line\"", "</p>");
    assert!(line.contains("<span class=\"badge auto-on\">auto on</span>"));
    assert!(line.contains("channel <strong>dev</strong>"));
    assert!(line.contains("requires <code>lxd-boot</code>, <code>pfq</code>"));
    assert!(line.contains("soak 30m 00s"));
    assert!(line.contains("rolls back after 3 failed results in a row of <code>bvt-cq</code>"));
    assert!(panel.contains("A soak ends in 12m 00s"));
    assert!(!panel.contains("id=\"policy-next\""));
    assert!(!panel.contains("policy-hold-note"));
    // a releaser may hold (with a reason) and evaluate; nothing to lift
    assert!(panel.contains("<input type=\"text\" id=\"hold-reason\" maxlength=\"500\""));
    assert!(panel.contains("id=\"policy-hold\" data-milestone=\"123\""));
    assert!(panel.contains("id=\"policy-evaluate\" data-milestone=\"123\""));
    assert!(!panel.contains("policy-unhold"));

    let mut v = samples::release(true);
    let p = v.policy.as_mut().unwrap();
    p.auto_here = false;
    p.require.clear();
    p.soak_secs = 0;
    p.rollback_after = 1;
    p.wake_in_secs = None;
    p.promote = Some(PromoteBrief {
        candidate_id: 899,
        reason: "required suites passed".into(),
    });
    let html = dash().release(&v).unwrap();
    let panel = policy_panel(&html);
    assert!(panel.contains(
        "auto off here</span> automatic release is on, but not for channel <strong>dev</strong> (only dev, beta)"
    ));
    assert!(panel.contains("no required suites"));
    assert!(panel.contains("no soak"));
    assert!(panel.contains("rolls back after 1 failed result in a row"));
    assert!(panel.contains(
        "Next: promotes candidate <a href=\"#candidate-899\">#899</a> <span class=\"muted\">(required suites passed)</span>"
    ));
    assert!(!panel.contains("A soak ends"));

    let p = v.policy.as_mut().unwrap();
    p.auto = false;
    p.watch.clear();
    let html = dash().release(&v).unwrap();
    let panel = policy_panel(&html);
    assert!(panel.contains("<span class=\"badge auto-off\">auto off</span> promotion is by hand"));
    assert!(panel.contains("no automatic rollback"));

    // a viewer sees the policy, not the buttons
    let html = dash().release(&samples::release(false)).unwrap();
    let panel = policy_panel(&html);
    assert!(panel.contains("id=\"policy-line\""));
    for hook in [
        "hold-reason",
        "policy-hold\"",
        "policy-unhold",
        "policy-evaluate",
    ] {
        assert!(!panel.contains(hook), "a viewer got {hook}");
    }
}

#[test]
fn a_hold_says_who_why_and_when_and_releasers_can_lift_it() {
    let mut v = samples::release(true);
    v.policy.as_mut().unwrap().hold = Some(HoldView {
        held_by: "alice (slipway serve)".into(),
        reason: Some("lab outage until Monday".into()),
        held_at: samples::at(90),
    });
    let html = dash().release(&v).unwrap();
    assert!(html.contains("<section class=\"card policy held\" id=\"policy\">"));
    let note = between(&html, "id=\"policy-hold-note\"", "</p>");
    assert!(note.contains("<strong>Held</strong> by alice (slipway serve)"));
    assert!(note.contains(">1h ago</time>: <q class=\"hold-reason\">lab outage until Monday</q>"));
    let panel = policy_panel(&html);
    assert!(panel.contains(
        "<button type=\"button\" id=\"policy-unhold\" data-milestone=\"123\">Unhold</button>"
    ));
    assert!(!panel.contains("id=\"policy-hold\""));
    assert!(!panel.contains("id=\"hold-reason\""));
    assert!(panel.contains("id=\"policy-evaluate\""));

    v.policy.as_mut().unwrap().hold.as_mut().unwrap().reason = None;
    let html = dash().release(&v).unwrap();
    assert!(between(&html, "id=\"policy-hold-note\"", "</p>").contains("(no reason given)"));
}

#[test]
fn candidates_show_their_promotion_state_reasons_and_required_suites() {
    let mut v = samples::release(false);
    let states = [
        "promoted",
        "eligible",
        "waiting",
        "blocked",
        "superseded",
        "held",
        "someday",
    ];
    let template = v.candidates[0].clone();
    v.candidates = states
        .iter()
        .zip(1..)
        .map(|(state, id)| {
            let mut c = template.clone();
            c.id = id;
            let p = c.policy.as_mut().unwrap();
            p.state = state.to_string();
            c
        })
        .collect();
    let html = dash().release(&v).unwrap();
    for (state, id) in states.iter().zip(1..) {
        let row = between(&html, &format!("<tr id=\"candidate-{id}\""), "</tr>");
        let class = if *state == "someday" {
            "ps-unknown"
        } else {
            &format!("ps-{state}")
        };
        assert!(
            row.contains(&format!("<span class=\"badge {class}\">{state}</span>")),
            "{state}:\n{row}"
        );
    }

    let html = dash().release(&samples::release(false)).unwrap();
    // one reason: shown as it is
    let blocked = between(&html, "<tr id=\"candidate-898\"", "</tr>");
    assert!(blocked.contains("<div class=\"reason\">suite lxd-boot failed: boot, sftp</div>"));
    assert!(blocked.contains(
        "<span class=\"req req-failed\" title=\"lxd-boot: failed (result 4117): boot, sftp\">✗ lxd-boot</span>"
    ));
    assert!(blocked.contains(
        "<span class=\"req req-passed\" title=\"pfq: passed (result 4118)\">✓ pfq</span>"
    ));
    // several: the first visible, all in the tooltip and the details
    let waiting = between(&html, "<tr id=\"candidate-899\"", "</tr>");
    assert!(waiting.contains(
        "<summary title=\"missing suite pfq\nsoak: 12m left of 30m\">missing suite pfq <span class=\"muted\">+1</span></summary>"
    ));
    assert!(waiting.contains("<li>soak: 12m left of 30m</li>"));
    assert!(
        waiting.contains("<span class=\"req req-missing\" title=\"pfq: missing\">… pfq</span>")
    );
    // the stylesheet knows every class the page may use
    for class in [
        "ps-promoted",
        "ps-eligible",
        "ps-waiting",
        "ps-blocked",
        "ps-superseded",
        "ps-held",
        "ps-unknown",
        "req-passed",
        "req-failed",
        "req-missing",
        "req-unknown",
        "ev-promote",
        "ev-rollback",
        "ev-hold",
        "ev-unhold",
        "ev-error",
        "ev-unknown",
        "auto-on",
        "auto-off",
    ] {
        assert!(
            STYLE_CSS.contains(&format!(".{class}")),
            "no style for {class}"
        );
    }

    // a candidate the policy does not know (newer than its facts) gets a dash
    let mut v = samples::release(false);
    v.candidates[0].policy = None;
    let html = dash().release(&v).unwrap();
    let row = between(&html, "<tr id=\"candidate-899\"", "</tr>");
    assert!(row.contains("<td class=\"promotion\"><span class=\"muted\">—</span></td>"));
}

#[test]
fn policy_timeline_lists_events_newest_first_with_links() {
    let html = dash().release(&samples::release(false)).unwrap();
    let timeline = between(
        &html,
        "<ol class=\"timeline\" id=\"policy-timeline\">",
        "</ol>",
    );
    let ids: Vec<usize> = [14, 13, 12, 11, 10]
        .iter()
        .map(|id| timeline.find(&format!("id=\"policy-event-{id}\"")).unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "order as given");
    let error = between(timeline, "id=\"policy-event-14\"", "</li>");
    assert!(error.contains("<span class=\"badge ev-error\">error</span>"));
    assert!(error.contains("production bucket lease held by host ci-2"));
    assert!(error.contains("<a href=\"#candidate-898\">candidate #898</a>"));
    assert!(error.contains(">40m ago</time>"));
    let promote = between(timeline, "id=\"policy-event-11\"", "</li>");
    assert!(promote.contains("<span class=\"badge ev-promote\">promote</span>"));
    assert!(promote.contains("<a href=\"#release-31\">release #31</a>"));
    assert!(promote.contains("results #4090, #4093"));
    assert!(promote.contains(">1d ago</time>"));
    assert!(timeline.contains("<span class=\"badge ev-rollback\">rollback</span>"));
    assert!(timeline.contains("<span class=\"badge ev-hold\">hold</span>"));
    assert!(timeline.contains("<span class=\"badge ev-unhold\">unhold</span>"));
    // the release links land on the history rows
    assert!(html.contains("<tr id=\"release-31\" class=\"live\">"));
    assert!(html.contains("<tr id=\"release-30\">"));

    let mut v = samples::release(false);
    v.policy.as_mut().unwrap().timeline[0].kind = "<b>".into();
    let html = dash().release(&v).unwrap();
    assert!(html.contains("<span class=\"badge ev-unknown\">&lt;b&gt;</span>"));

    v.policy.as_mut().unwrap().timeline.clear();
    let html = dash().release(&v).unwrap();
    assert!(html.contains("The policy has not acted on this milestone yet."));
    assert!(!html.contains("policy-timeline"));
}

#[test]
fn a_policy_that_cannot_be_evaluated_leaves_the_page_usable() {
    let mut v = samples::release(true);
    v.policy = None;
    v.policy_error = Some("database is locked".into());
    for c in &mut v.candidates {
        c.policy = None;
    }
    let html = dash().release(&v).unwrap();
    assert!(html.contains(
        "<p class=\"error-text\" id=\"policy-error\">The policy could not be evaluated: database is locked</p>"
    ));
    assert!(!html.contains("policy-evaluate"));
    assert!(html.contains("The policy has not acted on this milestone yet."));
    assert!(html.contains("class=\"promote\""));
    assert!(html.contains("id=\"rollback\""));
}

#[test]
fn hostile_policy_text_is_escaped() {
    let mut v = samples::release(true);
    let p = v.policy.as_mut().unwrap();
    p.require = vec![HOSTILE.into()];
    p.watch = vec![HOSTILE.into()];
    p.channels = Some(vec![HOSTILE.into()]);
    p.auto_here = false;
    p.hold = Some(HoldView {
        held_by: HOSTILE.into(),
        reason: Some(format!("{HOSTILE}\"onmouseover=\"x")),
        held_at: HOSTILE.into(),
    });
    p.promote = Some(PromoteBrief {
        candidate_id: 1,
        reason: HOSTILE.into(),
    });
    p.timeline[0].detail = HOSTILE.into();
    p.timeline[1].kind = HOSTILE.into();
    let c = v.candidates[0].policy.as_mut().unwrap();
    c.state = format!("{HOSTILE}\"onclick=\"x");
    c.reasons = vec![HOSTILE.into(), format!("\"onmouseover=\"x{HOSTILE}")];
    c.suites[0].suite = HOSTILE.into();
    c.suites[0].status = "\"onclick=\"x".into();
    c.suites[0].failed_cases = vec![format!("{HOSTILE}\"onmouseover=\"x")];
    v.candidates[1].policy.as_mut().unwrap().reasons = vec![HOSTILE.into()];
    let html = dash().release(&v).unwrap();
    assert_escaped(&html);
    assert!(!html.contains("\"onmouseover=\""));
    assert!(!html.contains("\"onclick=\""));
    assert!(!html.contains("<b>"));

    let mut v = samples::release(true);
    v.policy = None;
    v.policy_error = Some(HOSTILE.into());
    assert_escaped(&dash().release(&v).unwrap());
}

/// The `<li>` of one run on the presubmit page.
fn review_run_item(html: &str, run_id: i64) -> &str {
    let start = html
        .find(&format!("<li id=\"review-run-{run_id}\""))
        .unwrap_or_else(|| panic!("no run {run_id}:\n{html}"));
    let end = start + html[start..].find("</li>").unwrap();
    &html[start..end]
}

#[test]
fn presubmit_lists_changes_with_their_runs_and_votes() {
    let v = samples::presubmit();
    let html = dash().presubmit(&v).unwrap();
    assert_eq!(count(&html, "<tr id=\"change-"), 4);
    assert!(html.contains(
        "<a href=\"https:&#x2f;&#x2f;review.example.org&#x2f;c&#x2f;crostini&#x2f;guest&#x2f;+&#x2f;4711\" class=\"change\""
    ));
    assert!(html.contains("guest-tools: retry apt fetches"));
    assert!(html.contains("<td>bob</td>"));
    assert!(html.contains("<code>release-R123-16123.B</code>"));
    assert!(html.contains("<span class=\"review-status\">merged</span>"));
    // as given: newest update first
    assert!(html.find("change-4711").unwrap() < html.find("change-4688").unwrap());

    for (run, status, vote, outdated) in [
        (5012, "running", "waits for the run", false),
        (5011, "success", "Verified +1 posted", false),
        (5008, "failure", "Verified -1 posted", true),
        (5005, "cancelled", "none (cancelled)", true),
        (5010, "failure", "sending (attempt 2)", false),
        (
            5003,
            "success",
            "skipped: patch set 1 is no longer current",
            true,
        ),
        (
            5001,
            "success",
            "failed: gave up after 5 attempts: 502 Bad Gateway",
            false,
        ),
    ] {
        let li = review_run_item(&html, run);
        assert!(
            li.contains(&format!(
                "<a href=\"/runs/{run}\" class=\"badge st-{status}\" title=\"run {run}\">#{run} {status}</a>"
            )),
            "{li}"
        );
        assert!(li.contains(&format!(">{vote}</span>")), "{li}");
        assert_eq!(li.contains(">outdated</span>"), outdated, "{li}");
    }
    let plus = review_run_item(&html, 5011);
    assert!(plus.contains("class=\"vote vote-plus\" title=\"Verified+1 on patch set 3\""));
    assert!(review_run_item(&html, 5008).contains("class=\"vote vote-minus\""));
    assert!(review_run_item(&html, 5010).contains("class=\"vote vote-waiting\""));
    let li = review_run_item(&html, 5003);
    assert!(
        li.contains("ps</span> 1 <span class=\"tag outdated\" title=\"patch set 2 is current\">")
    );
    assert!(html.contains("<span class=\"muted\">no runs</span>"));

    assert!(html.contains("id=\"review-poll\""));
    assert!(html.contains(">1m ago</time>"));
    assert!(html.contains("4 changes read") && html.contains("6 runs queued"));
    assert!(html.contains("<span class=\"badge st-success\">no errors</span>"));
    assert!(!html.contains("review-errors"));
    assert!(html.contains("data-refresh=\"15\""));
    assert!(html.contains("<a href=\"/presubmit\" aria-current=\"page\">Presubmit</a>"));
}

#[test]
fn presubmit_votes_without_a_label_and_links_only_web_urls() {
    let mut v = samples::presubmit();
    v.label = None;
    v.changes[0].change.url = None;
    let html = dash().presubmit(&v).unwrap();
    assert!(review_run_item(&html, 5011).contains(">+1 posted</span>"));
    assert!(html.contains("<span class=\"change\">4711</span>"));
    assert!(!html.contains("+&#x2f;4711\""));
}

#[test]
fn presubmit_shows_poll_errors() {
    let mut v = samples::presubmit();
    v.poll.errors = vec![
        "GET /changes/: 503 Service Unavailable".into(),
        "change 4702: not visible".into(),
    ];
    v.poll.last_poll = None;
    let html = dash().presubmit(&v).unwrap();
    assert!(html.contains("id=\"review-errors\""));
    assert_eq!(count(&html, "<li class=\"error-text\">"), 2);
    assert!(html.contains("<span class=\"badge st-failure\">2 errors</span>"));
    assert!(html.contains("last poll <span class=\"muted\">not yet</span>"));
}

#[test]
fn presubmit_empty_states() {
    let d = dash();
    let mut v = samples::presubmit();
    v.changes.clear();
    let html = d.presubmit(&v).unwrap();
    assert!(html.contains("No review changes seen yet."));
    assert!(!html.contains("id=\"changes\""));
    assert!(html.contains("id=\"review-poll\""));

    v.configured = false;
    v.poll.errors = vec!["[review] is not configured".into()];
    let html = d.presubmit(&v).unwrap();
    assert!(html.contains("id=\"review-unconfigured\""));
    assert!(html.contains("<code>[review]</code> is not configured"));
    assert!(!html.contains("No review changes seen yet."));
    assert!(!html.contains("review-poll") && !html.contains("review-errors"));
    assert!(!html.contains("data-refresh"));
}

#[test]
fn presubmit_run_page_shows_the_change_and_the_vote() {
    let v = samples::untrusted_run();
    let html = dash().run(&v).unwrap();
    let start = html
        .find("<dl class=\"facts\" id=\"review\" data-vote-state=\"posted\">")
        .expect("review box");
    let review = &html[start..start + html[start..].find("</dl>").unwrap()];
    assert!(
        review.contains("+&#x2f;4702\" class=\"change\""),
        "{review}"
    );
    assert!(review.contains(">4702</a> <span class=\"review-status\">new</span>"));
    assert!(review.contains("<dd>1 <span class=\"tag outdated\""));
    assert!(review.contains("kernel: bump modules to 6.6.40"));
    assert!(review.contains("<dd>bob</dd>"));
    assert!(review.contains("<code>release-R123-16123.B</code>"));
    assert!(review.contains("<span class=\"vote vote-minus\">Verified -1 posted</span>"));

    // a change no longer recorded: the number, no link; the note of a retry beside the vote
    let mut v = samples::untrusted_run();
    let r = v.review.as_mut().unwrap();
    r.change = None;
    r.run = samples::review_run(
        4998,
        "presubmit",
        1,
        "failure",
        "sending",
        Some(-1),
        2,
        Some("attempt 2 failed, trying again: 503"),
    );
    let html = dash().run(&v).unwrap();
    assert!(html.contains("<dd>4702 <span class=\"muted\">(no longer recorded)</span>"));
    assert!(!html.contains("class=\"change\""));
    assert!(html.contains("sending (attempt 2)</span> <span class=\"muted\">· attempt 2 failed, trying again: 503</span>"));

    // other runs have no review box
    assert!(
        !dash()
            .run(&samples::run(false))
            .unwrap()
            .contains("id=\"review\"")
    );
}

#[test]
fn presubmit_hostile_review_text_is_escaped() {
    let d = dash();
    let mut v = samples::presubmit();
    let c = &mut v.changes[0];
    c.change.subject = HOSTILE.into();
    c.change.owner = HOSTILE.into();
    c.change.branch = HOSTILE.into();
    c.change.status = HOSTILE.into();
    c.change.url = Some(format!("https://x/\"onmouseover=\"{HOSTILE}"));
    c.runs[0].job = HOSTILE.into();
    c.runs[0].status = HOSTILE.into();
    c.runs[3].vote.note = Some(format!("\"onmouseover=\"{HOSTILE}"));
    c.runs[2].vote.state = "failed".into();
    c.runs[2].vote.note = Some(HOSTILE.into());
    v.label = Some(HOSTILE.into());
    v.poll.errors = vec![HOSTILE.into()];
    let html = d.presubmit(&v).unwrap();
    assert_escaped(&html);
    assert!(!html.contains("\"onmouseover=\""));
    assert!(html.contains("class=\"badge st-unknown\""));

    let mut run = samples::untrusted_run();
    let r = run.review.as_mut().unwrap();
    r.change.as_mut().unwrap().subject = HOSTILE.into();
    r.label = Some(HOSTILE.into());
    r.run.vote.note = Some(HOSTILE.into());
    assert_escaped(&d.run(&run).unwrap());
}

#[test]
fn login_form_posts_the_token_and_next() {
    let html = dash().login(&samples::login()).unwrap();
    assert!(html.contains("<form method=\"post\" action=\"/login\""));
    assert!(html.contains("type=\"password\" id=\"token\" name=\"token\""));
    assert!(
        html.contains("<input type=\"hidden\" name=\"next\" value=\"&#x2f;milestones&#x2f;123\">")
    );
    assert!(html.contains("That token is not valid."));
    assert!(html.contains("id=\"login-link\""));
    assert!(!html.contains("/logout"));
}

#[test]
fn logged_in_pages_show_the_role_and_a_logout_form() {
    let html = dash().home(&samples::home(1)).unwrap();
    assert!(html.contains("<span class=\"role\""));
    assert!(html.contains(">releaser</span>"));
    assert!(html.contains("<form method=\"post\" action=\"/logout\""));
    assert!(!html.contains("id=\"login-link\""));
}

#[test]
fn error_page_names_the_status() {
    let d = dash();
    let html = d.error(404, "no run 77").unwrap();
    assert!(html.contains("<h1>404 Not Found</h1>"));
    assert!(html.contains("no run 77"));
    assert!(!html.contains("login-link"));
    let html = d.error(599, "odd").unwrap();
    assert!(html.contains("<h1>599</h1>"));
}

#[test]
fn pages_load_nothing_from_another_host() {
    let mut sources: Vec<(&str, &str)> = TEMPLATES.to_vec();
    sources.push(("slipway.css", STYLE_CSS));
    sources.push(("slipway.js", APP_JS));
    for (name, text) in sources {
        assert!(!text.contains("://"), "{name} names a URL with a scheme");
        for attr in ["src=\"//", "href=\"//", "url(//", "url(\"//", "@import"] {
            assert!(!text.contains(attr), "{name} loads from elsewhere: {attr}");
        }
    }
    let d = dash();
    let pages = [
        d.home(&samples::home(4)).unwrap(),
        d.runs(&samples::runs()).unwrap(),
        d.run(&samples::run(true)).unwrap(),
        d.release(&samples::release(true)).unwrap(),
        d.presubmit(&samples::presubmit()).unwrap(),
        d.run(&samples::untrusted_run()).unwrap(),
        d.login(&samples::login()).unwrap(),
        d.error(500, "x").unwrap(),
    ];
    for html in pages {
        assert!(!html.contains("://"));
    }
}

/// The script looks elements up by these ids and classes; a renamed one in a template would
/// silently break the live parts.
#[test]
fn script_hooks_exist_in_the_pages() {
    let d = dash();
    let run = d.run(&samples::run(true)).unwrap();
    let release = d.release(&samples::release(true)).unwrap();
    let untrusted = d.run(&samples::untrusted_run()).unwrap();
    let mut held = samples::release(true);
    held.policy.as_mut().unwrap().hold = Some(HoldView {
        held_by: "alice".into(),
        reason: None,
        held_at: NOW.into(),
    });
    let held = d.release(&held).unwrap();
    for (html, hook) in [
        (&run, "id=\"action-message\""),
        (&run, "id=\"run-status\""),
        (&run, "id=\"live-pill\""),
        (&run, "id=\"cancel-run\""),
        (&run, "data-run=\"4998\""),
        (&run, "data-run-id=\"4998\""),
        (&run, "class=\"log-link\""),
        (&run, "class=\"node-status\""),
        (&run, "class=\"log-status\""),
        (&run, "class=\"node-error error-text\""),
        (
            &run,
            "<details class=\"log\" id=\"logpanel-apt_repo\" data-build=\"apt_repo\" data-status=\"success\"",
        ),
        (&untrusted, "id=\"review\" data-vote-state=\"posted\""),
        (&release, "id=\"action-message\""),
        (&release, "id=\"rollback\""),
        (&release, "class=\"promote\""),
        (&release, "id=\"hold-reason\""),
        (&release, "id=\"policy-hold\""),
        (&release, "id=\"policy-evaluate\""),
        (&held, "id=\"policy-unhold\""),
    ] {
        assert!(html.contains(hook), "missing {hook}");
    }
    for used in [
        "'action-message'",
        "'#cancel-run'",
        "'#rollback'",
        "'button.promote'",
        "'logpanel-'",
        "'log-'",
        "'build-'",
        "'#run-status .badge'",
        "'live-pill'",
        "'login-link'",
        "'/stream'",
        "'/api/v1/runs/'",
        "'/promote'",
        "'/rollback'",
        "'/cancel'",
        "'#policy-hold'",
        "'#policy-unhold'",
        "'#policy-evaluate'",
        "byId('hold-reason')",
        "'/hold'",
        "'/unhold'",
        "'/evaluate'",
        "getElementById('review')",
        "dataset.voteState",
    ] {
        assert!(APP_JS.contains(used), "script no longer uses {used}");
    }
}

#[test]
fn asset_version_follows_the_assets() {
    let d = dash();
    assert_eq!(d.asset_version().len(), 8);
    let html = d.login(&samples::login()).unwrap();
    assert!(html.contains(&format!("/static/slipway.css?v={}", d.asset_version())));
    assert_ne!(
        fnv1a(&[STYLE_CSS, APP_JS]),
        fnv1a(&[STYLE_CSS, APP_JS, " "])
    );
}

/// Writes sample pages and the static files for a look in a browser:
/// `SLIPWAY_DASH_SAMPLES=/tmp cargo nextest run -p slipway-server write_samples --run-ignored only`
#[test]
#[ignore = "writes files for screenshots"]
fn write_samples() {
    let dir = std::path::PathBuf::from(
        std::env::var("SLIPWAY_DASH_SAMPLES").unwrap_or_else(|_| "/tmp".into()),
    );
    let d = dash();
    let mut hostile_run = samples::run(false);
    hostile_run.builds[4].error = Some(HOSTILE.into());
    let mut held = samples::release(true);
    held.policy.as_mut().unwrap().hold = Some(HoldView {
        held_by: "alice (slipway serve)".into(),
        reason: Some("lab outage until Monday".into()),
        held_at: samples::at(90),
    });
    for c in &mut held.candidates {
        let p = c.policy.as_mut().unwrap();
        if p.state == "waiting" {
            p.state = "held".into();
            p.reasons.insert(
                0,
                "held by alice (slipway serve): lab outage until Monday".into(),
            );
        }
    }
    let pages = [
        ("home", d.home(&samples::home(4)).unwrap()),
        ("home30", d.home(&samples::home(30)).unwrap()),
        ("runs", d.runs(&samples::runs()).unwrap()),
        ("run", d.run(&samples::run(true)).unwrap()),
        ("run-failed", d.run(&hostile_run).unwrap()),
        ("run-untrusted", d.run(&samples::untrusted_run()).unwrap()),
        ("presubmit", d.presubmit(&samples::presubmit()).unwrap()),
        ("release", d.release(&samples::release(true)).unwrap()),
        ("release-held", d.release(&held).unwrap()),
        ("login", d.login(&samples::login()).unwrap()),
        ("error", d.error(404, "no run 77").unwrap()),
    ];
    let home = samples::home(30);
    let start = std::time::Instant::now();
    for _ in 0..200 {
        d.home(&home).unwrap();
    }
    eprintln!(
        "home page, 30 milestones x 5 jobs: {:?} per render",
        start.elapsed() / 200
    );
    let mut presubmit = samples::presubmit();
    let rows = presubmit.changes.clone();
    presubmit.changes = rows.iter().cycle().take(50).cloned().collect();
    let start = std::time::Instant::now();
    for _ in 0..200 {
        d.presubmit(&presubmit).unwrap();
    }
    eprintln!(
        "presubmit page, 50 changes x 1.75 runs: {:?} per render",
        start.elapsed() / 200
    );
    std::fs::create_dir_all(dir.join("static")).unwrap();
    std::fs::write(dir.join("static/slipway.css"), STYLE_CSS).unwrap();
    std::fs::write(dir.join("static/slipway.js"), APP_JS).unwrap();
    for (name, html) in pages {
        // file:// has no server root: point the assets next to the page
        let html = html.replace("\"/static/", "\"static/");
        std::fs::write(dir.join(format!("dash-{name}.html")), html).unwrap();
    }
}
