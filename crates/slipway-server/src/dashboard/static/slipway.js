// Slipway dashboard: the live parts only (log panels, run status polling, home refresh, action
// buttons). Every page works without this file except those. Text from the server is only ever
// inserted as textContent; the home refresh swaps in HTML the server rendered (and escaped).
(function () {
  'use strict';

  var FINAL = ['success', 'failure', 'cancelled', 'interrupted', 'skipped'];
  var KNOWN = FINAL.concat(['queued', 'pending', 'running', 'bypassed']);
  var MAX_LINES = 20000; // lines kept in one log panel; the plain text link has all of them
  var POLL_MS = 2000;

  function byId(id) { return document.getElementById(id); }
  function isFinal(s) { return FINAL.indexOf(s) >= 0; }
  function statusClass(s) { return KNOWN.indexOf(s) >= 0 ? 'st-' + s : 'st-unknown'; }

  function setBadge(badge, status) {
    if (!badge) return;
    badge.className = 'badge ' + statusClass(status);
    badge.textContent = status;
  }

  function setStatusClass(el, status) {
    el.className = el.className.replace(/\bst-[a-z]+\b/g, '').trim() + ' ' + statusClass(status);
  }

  function compactDuration(secs) {
    var s = Math.max(0, Math.floor(secs));
    function pad(n) { return (n < 10 ? '0' : '') + n; }
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + pad(s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + pad(Math.floor((s % 3600) / 60)) + 'm';
    return Math.floor(s / 86400) + 'd ' + pad(Math.floor((s % 86400) / 3600)) + 'h';
  }

  function took(start, end) {
    if (!start) return '';
    var a = Date.parse(start), b = end ? Date.parse(end) : Date.now();
    return isNaN(a) || isNaN(b) ? '' : compactDuration((b - a) / 1000);
  }

  // ---- messages and actions -------------------------------------------------------------

  function showMessage(text) {
    var box = byId('action-message');
    if (!box) { window.alert(text); return; }
    box.textContent = text;
    box.hidden = false;
    box.scrollIntoView({ block: 'nearest' });
  }

  function postAction(button, url, body, question) {
    if (!window.confirm(question)) return;
    button.disabled = true;
    fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
      body: JSON.stringify(body)
    }).then(function (resp) {
      if (resp.ok) { window.location.reload(); return; }
      return resp.text().then(function (text) {
        var message = resp.status + ' ' + resp.statusText;
        try {
          var parsed = JSON.parse(text);
          if (parsed && parsed.error) message = String(parsed.error);
        } catch (e) { if (text) message += ': ' + text.slice(0, 300); }
        if (resp.status === 401) message += ' (log in first)';
        showMessage(message);
        button.disabled = false;
      });
    }).catch(function (err) {
      showMessage('Request failed: ' + err);
      button.disabled = false;
    });
  }

  function milestoneApi(button, action) {
    return '/api/v1/milestones/' + encodeURIComponent(button.dataset.milestone) + action;
  }

  document.addEventListener('click', function (ev) {
    var t = ev.target;
    if (!(t instanceof Element)) return;
    var b = t.closest('#cancel-run');
    if (b) {
      postAction(b, '/api/v1/runs/' + encodeURIComponent(b.dataset.run) + '/cancel', {},
        'Cancel run #' + b.dataset.run + '?');
      return;
    }
    b = t.closest('button.promote');
    if (b) {
      postAction(b, milestoneApi(b, '/promote'),
        { candidate: Number(b.dataset.candidate) },
        'Promote candidate #' + b.dataset.candidate + ' of milestone ' + b.dataset.milestone + ' to production?');
      return;
    }
    b = t.closest('#rollback');
    if (b) {
      postAction(b, milestoneApi(b, '/rollback'), {},
        'Roll production of milestone ' + b.dataset.milestone + ' back to the previous release?');
      return;
    }
    b = t.closest('#policy-hold');
    if (b) {
      var reason = (byId('hold-reason') || { value: '' }).value.trim();
      postAction(b, milestoneApi(b, '/hold'), reason ? { reason: reason } : {},
        'Hold milestone ' + b.dataset.milestone + '? Nothing is promoted automatically until it is lifted.');
      return;
    }
    b = t.closest('#policy-unhold');
    if (b) {
      postAction(b, milestoneApi(b, '/unhold'), {},
        'Lift the hold on milestone ' + b.dataset.milestone + '? The policy may promote at once.');
      return;
    }
    b = t.closest('#policy-evaluate');
    if (b) {
      postAction(b, milestoneApi(b, '/evaluate'), {},
        'Evaluate the release policy of milestone ' + b.dataset.milestone + ' now? It promotes or rolls back if the policy says so.');
      return;
    }
    var link = t.closest('a.log-link');
    if (link) {
      var panel = byId('logpanel-' + link.dataset.build);
      if (panel) {
        ev.preventDefault();
        panel.open = true;
        panel.scrollIntoView({ block: 'start', behavior: 'smooth' });
      }
    }
  });

  // Come back to this page after logging in.
  var login = byId('login-link');
  if (login && window.location.pathname !== '/login') {
    login.href = '/login?next=' + encodeURIComponent(window.location.pathname + window.location.search);
  }

  // ---- log panels -----------------------------------------------------------------------

  var panels = {}; // build name -> LogPanel

  function LogPanel(details) {
    this.details = details;
    this.build = details.dataset.build;
    this.url = details.dataset.logUrl;
    this.pre = byId('log-' + this.build);
    this.source = null;
    this.state = 'idle'; // idle | waiting | streaming | done
    this.count = 0;
    this.trimmed = false;
    var self = this;
    details.addEventListener('toggle', function () { if (details.open) self.open(); });
    if (details.open) this.open();
  }

  LogPanel.prototype.status = function () { return this.details.dataset.status; };

  LogPanel.prototype.open = function () {
    if (this.state === 'idle') this.load();
  };

  LogPanel.prototype.load = function () {
    var s = this.status();
    if (s === 'running') this.stream();
    else if (isFinal(s)) this.fetchText();
    else { this.state = 'waiting'; this.pre.dataset.placeholder = 'Waiting for the build to start…'; }
  };

  // Called by the run poller when the build's status changes.
  LogPanel.prototype.statusChanged = function () {
    if (this.state === 'waiting') this.load();
  };

  LogPanel.prototype.clear = function () {
    this.pre.textContent = '';
    this.count = 0;
    this.trimmed = false;
  };

  LogPanel.prototype.atBottom = function () {
    var p = this.pre;
    return p.scrollHeight - p.scrollTop - p.clientHeight < 8;
  };

  LogPanel.prototype.append = function (lines) {
    var follow = this.atBottom();
    var frag = document.createDocumentFragment();
    for (var i = 0; i < lines.length; i++) {
      var span = document.createElement('span');
      span.className = 'line';
      span.textContent = lines[i];
      frag.appendChild(span);
    }
    this.pre.appendChild(frag);
    this.count += lines.length;
    while (this.count > MAX_LINES) {
      var first = this.pre.querySelector('.line');
      if (!first) break;
      this.pre.removeChild(first);
      this.count--;
      this.trimmed = true;
    }
    if (this.trimmed && !this.pre.querySelector('.note')) {
      var note = document.createElement('span');
      note.className = 'line note';
      note.textContent = '… earlier lines not shown here: use the plain text link for the whole log';
      this.pre.insertBefore(note, this.pre.firstChild);
    }
    if (follow) this.pre.scrollTop = this.pre.scrollHeight;
  };

  LogPanel.prototype.fetchText = function () {
    var self = this;
    this.state = 'done';
    this.pre.dataset.placeholder = 'Loading…';
    fetch(this.url, { credentials: 'same-origin' }).then(function (resp) {
      if (!resp.ok) throw new Error(resp.status + ' ' + resp.statusText);
      return resp.text();
    }).then(function (text) {
      self.clear();
      var lines = text.split('\n');
      if (lines.length && lines[lines.length - 1] === '') lines.pop();
      if (!lines.length) { self.pre.dataset.placeholder = '(empty log)'; return; }
      self.pre.scrollTop = 0;
      self.append(lines);
    }).catch(function (err) {
      self.state = 'idle'; // opening the panel again retries
      self.pre.dataset.placeholder = 'Could not load the log: ' + err.message;
    });
  };

  // The stream starts at the beginning of the log, so a reconnect starts from a clean panel.
  LogPanel.prototype.stream = function () {
    var self = this;
    if (this.source) this.source.close();
    this.clear();
    this.state = 'streaming';
    this.pre.dataset.placeholder = 'Waiting for output…';
    this.pre.scrollTop = 0;
    var es = new EventSource(this.url + '/stream');
    this.source = es;
    es.addEventListener('line', function (e) { self.append([e.data]); });
    es.addEventListener('end', function (e) {
      es.close();
      self.source = null;
      self.state = 'done';
      if (!self.count) self.pre.dataset.placeholder = '(empty log)';
      if (e.data) updateBuild({ name: self.build, status: e.data });
    });
    es.onerror = function () {
      if (self.source !== es) return;
      es.close();
      self.source = null;
      window.setTimeout(function () {
        if (self.source || self.state === 'done') return;
        if (isFinal(self.status())) self.fetchText(); else self.stream();
      }, 3000);
    };
  };

  function updateBuild(b) {
    var node = byId('build-' + b.name);
    if (node && !node.classList.contains('bypassed')) {
      setStatusClass(node, b.status);
      setBadge(node.querySelector('.node-status .badge'), b.status);
      if (b.started_at !== undefined) {
        var dur = node.querySelector('.dur');
        if (dur) dur.textContent = took(b.started_at, b.finished_at);
      }
      if (b.error !== undefined) {
        var err = node.querySelector('.node-error');
        if (err) { err.textContent = b.error || ''; err.hidden = !b.error; }
      }
    }
    var details = byId('logpanel-' + b.name);
    if (details && details.dataset.status !== b.status) {
      details.dataset.status = b.status;
      setBadge(details.querySelector('.log-status .badge'), b.status);
      if (panels[b.name]) panels[b.name].statusChanged();
    }
  }

  // ---- run page polling -----------------------------------------------------------------

  function pollRun(runId) {
    var timer = null;
    function schedule() { timer = window.setTimeout(tick, POLL_MS); }
    function tick() {
      timer = null;
      if (document.visibilityState === 'hidden') return; // resumed by visibilitychange
      fetch('/api/v1/runs/' + encodeURIComponent(runId), {
        credentials: 'same-origin', headers: { 'Accept': 'application/json' }
      }).then(function (resp) {
        if (!resp.ok) throw new Error(resp.status);
        return resp.json();
      }).then(function (data) {
        (data.builds || []).forEach(updateBuild);
        var status = data.run && data.run.status;
        if (status) setBadge(document.querySelector('#run-status .badge'), status);
        if (status && isFinal(status)) {
          document.body.dataset.live = 'false';
          ['live-pill', 'cancel-run'].forEach(function (id) { var el = byId(id); if (el) el.hidden = true; });
          followVote();
          return;
        }
        schedule();
      }).catch(function () { schedule(); });
    }
    document.addEventListener('visibilitychange', function () {
      if (document.visibilityState === 'visible' && timer === null && document.body.dataset.live === 'true') tick();
    });
    schedule();
  }

  // ---- presubmit vote -------------------------------------------------------------------

  // A presubmit run's vote is sent after the run ends; until it settles, the review box is
  // swapped for the one the server renders now (its wording lives on the server), every
  // POLL_MS for at most two minutes.
  var VOTE_UNSETTLED = ['pending', 'sending'];
  function followVote() {
    var left = 60;
    function tick() {
      var box = byId('review');
      if (!box || VOTE_UNSETTLED.indexOf(box.dataset.voteState) < 0 || left-- <= 0) return;
      fetch(window.location.href, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
        .then(function (resp) { if (!resp.ok) throw new Error(resp.status); return resp.text(); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, 'text/html').getElementById('review');
          var now = byId('review');
          if (fresh && now) now.replaceWith(fresh);
        })
        .catch(function () { /* keep the last box; the next tick retries */ })
        .then(function () { window.setTimeout(tick, POLL_MS); });
    }
    window.setTimeout(tick, POLL_MS);
  }

  // ---- home refresh ---------------------------------------------------------------------

  function refreshHome(seconds) {
    window.setInterval(function () {
      if (document.visibilityState !== 'visible') return;
      fetch(window.location.href, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
        .then(function (resp) { if (!resp.ok) throw new Error(resp.status); return resp.text(); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, 'text/html').querySelector('main');
          var main = document.querySelector('main');
          if (fresh && main) main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes));
        })
        .catch(function () { /* keep the last good content; the next tick retries */ });
    }, seconds * 1000);
  }

  // ---- start ----------------------------------------------------------------------------

  var body = document.body;
  Array.prototype.forEach.call(document.querySelectorAll('details.log'), function (d) {
    panels[d.dataset.build] = new LogPanel(d);
  });
  if (window.location.hash.indexOf('#logpanel-') === 0) {
    var target = byId(decodeURIComponent(window.location.hash.slice(1)));
    if (target && target.tagName === 'DETAILS') target.open = true;
  }
  if (body.dataset.runId && body.dataset.live === 'true') pollRun(body.dataset.runId);
  else if (body.dataset.runId) followVote();
  if (body.dataset.refresh) refreshHome(Number(body.dataset.refresh) || 10);
})();
