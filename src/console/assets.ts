// The console's only static assets, served from the code (no third-party
// assets, nothing fetched from elsewhere): a stylesheet, and a script that
// refreshes the pending list by polling its JSON fragment (same origin, CSP
// script-src 'self'; the pages work without it).

export const CONSOLE_CSS = `body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center;flex-wrap:wrap}
header a{color:#cfe0ff;margin-right:1em}header .who{margin:0;opacity:.8}.logout{margin-left:auto}
main{max-width:72em;margin:1em auto;padding:0 1.2em}
.request{background:#fff;border:1px solid #d8dce3;border-radius:6px;padding:.8em 1.2em;margin:1em 0}
.status{font-size:.7em;text-transform:uppercase;background:#eef;padding:.1em .5em;border-radius:4px}
pre{background:#f0f2f5;padding:.5em;overflow-x:auto;white-space:pre-wrap;margin:0}
dl.input dt{font-weight:600}dl.input dd{margin:0 0 .5em 0}
table{border-collapse:collapse}td,th{border:1px solid #d8dce3;padding:.25em .5em;text-align:left}
.decide{display:flex;gap:2em;flex-wrap:wrap;border-top:1px solid #d8dce3;padding-top:.8em}
.decide form{display:flex;flex-direction:column;gap:.4em}
.ok{background:#e6f6ea;border-left:4px solid #2e8b57;padding:.5em}.error{background:#fdeaea;border-left:4px solid #c0392b;padding:.5em}
.search{display:flex;flex-wrap:wrap;gap:.5em 1em;align-items:flex-end;margin:1em 0}.search label{display:flex;flex-direction:column;font-size:.85em}
table.calls{width:100%;font-size:.9em;background:#fff}ol.replay{padding-left:1.5em}
.step{background:#fff;border:1px solid #d8dce3;border-radius:6px;padding:.2em 1em;margin:.6em 0}
.step p{margin:.3em 0}.summary{font-family:ui-monospace,monospace}dl.record dt{font-weight:600;margin-top:.5em}dl.record dd{margin:0}
.muted{color:#667}button{padding:.3em 1em}.approve{background:#2e8b57;color:#fff}.deny{background:#c0392b;color:#fff}
`;

export const CONSOLE_JS = `'use strict';
(function () {
  var box = document.getElementById('pending');
  if (!box) return;
  var url = box.getAttribute('data-live');
  function refresh() {
    fetch(url, { credentials: 'same-origin', headers: { accept: 'application/json' } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) {
        if (!j) return;
        var next = new DOMParser().parseFromString(j.html, 'text/html').getElementById('pending');
        if (next) box.replaceChildren.apply(box, Array.prototype.slice.call(next.childNodes));
      })
      .catch(function () {});
  }
  setInterval(refresh, 3000);
})();
`;
