/* Search over the site's claims and pages, from its own index (search.json, written by the build;
   static/search-index.js when the site is opened from file://). No request leaves the site. */
(function () {
  "use strict";
  var me = document.currentScript, root = (me && me.getAttribute("data-root")) || "";
  var form = document.querySelector("form.search");
  if (!form) return;
  var input = form.querySelector("input"), list = form.querySelector(".search-results"), index = null, loading = null;
  form.hidden = false;

  function load() {
    if (index) return Promise.resolve(index);
    if (loading) return loading;
    loading = fetch(root + "search.json").then(function (r) {
      if (!r.ok) throw new Error(r.status);
      return r.json();
    }).catch(function () {  // file:// pages may not fetch: load the same index as a script
      return new Promise(function (resolve) {
        var s = document.createElement("script");
        s.src = root + "static/search-index.js";
        s.onload = function () { resolve(window.claimsSearchIndex || []); };
        s.onerror = function () { resolve([]); };
        document.head.appendChild(s);
      });
    }).then(function (data) { index = data; return data; });
    return loading;
  }

  function score(entry, terms) {
    var title = entry.title.toLowerCase(), text = entry.text.toLowerCase(), total = 0;
    for (var i = 0; i < terms.length; i++) {
      var t = terms[i], inTitle = title.indexOf(t) >= 0, inText = text.indexOf(t) >= 0;
      if (!inTitle && !inText) return 0;
      total += (inTitle ? 3 : 0) + (inText ? 1 : 0);
    }
    return total + (entry.kind === "claim" ? 0.5 : 0);
  }

  function snippet(text, term) {
    var at = text.toLowerCase().indexOf(term), start = Math.max(0, at - 60);
    return (start > 0 ? "…" : "") + text.slice(start, start + 160) + (text.length > start + 160 ? "…" : "");
  }

  function show(query) {
    var terms = query.toLowerCase().split(/\s+/).filter(Boolean);
    list.textContent = "";
    if (!terms.length) { list.hidden = true; return; }
    load().then(function (data) {
      var hits = data.map(function (e) { return [score(e, terms), e]; })
        .filter(function (h) { return h[0] > 0; })
        .sort(function (a, b) { return b[0] - a[0]; }).slice(0, 12);
      list.textContent = "";
      if (!hits.length) {
        var none = document.createElement("li");
        none.className = "empty";
        none.textContent = "Nothing matches “" + query + "”.";
        list.appendChild(none);
      }
      hits.forEach(function (h) {
        var e = h[1], li = document.createElement("li"), a = document.createElement("a"), kind = document.createElement("span");
        a.href = root + e.url;
        a.textContent = e.title;
        kind.className = "kind";
        kind.textContent = e.kind;
        li.appendChild(a);
        li.appendChild(kind);
        if (e.text) {
          var p = document.createElement("span");
          p.className = "snippet";
          p.textContent = snippet(e.text, terms[0]);
          li.appendChild(p);
        }
        list.appendChild(li);
      });
      list.hidden = false;
    });
  }

  input.addEventListener("focus", load);
  input.addEventListener("input", function () { show(input.value); });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { input.value = ""; show(""); }
  });
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var first = list.querySelector("a");
    if (first) window.location.href = first.href;
  });
  document.addEventListener("click", function (ev) { if (!form.contains(ev.target)) list.hidden = true; });
})();
