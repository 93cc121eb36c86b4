// Checks an inclusion proof in the browser with nothing but Web Crypto: the leaf's hash,
// the path to the root (RFC 9162 2.1.3.2), the root in the checkpoint, and the checkpoint's
// Ed25519 signature (C2SP signed note) by a key from the published list /audit/v1/keys.
(function () {
  "use strict";
  var box = document.getElementById("check");
  var button = document.getElementById("check-button");
  var out = document.getElementById("check-result");
  if (!box || !button || !window.crypto || !crypto.subtle) { return; }
  box.querySelector(".noscript-only").hidden = true;
  button.hidden = false;

  function bytes(hex) {
    var a = new Uint8Array(hex.length / 2);
    for (var i = 0; i < a.length; i++) { a[i] = parseInt(hex.substr(i * 2, 2), 16); }
    return a;
  }
  function b64(text) {
    var s = atob(text), a = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) { a[i] = s.charCodeAt(i); }
    return a;
  }
  function join(parts) {
    var n = 0, i, a, at = 0;
    for (i = 0; i < parts.length; i++) { n += parts[i].length; }
    a = new Uint8Array(n);
    for (i = 0; i < parts.length; i++) { a.set(parts[i], at); at += parts[i].length; }
    return a;
  }
  function same(a, b) {
    if (a.length !== b.length) { return false; }
    for (var i = 0; i < a.length; i++) { if (a[i] !== b[i]) { return false; } }
    return true;
  }
  function sha256(data) {
    return crypto.subtle.digest("SHA-256", data).then(function (d) { return new Uint8Array(d); });
  }
  function node(left, right) { return sha256(join([new Uint8Array([1]), left, right])); }

  async function rootFrom(index, size, leaf, path) {
    var fn = index, sn = size - 1, r = leaf;
    for (var i = 0; i < path.length; i++) {
      if (sn === 0) { throw new Error("proof too long"); }
      if (fn % 2 === 1 || fn === sn) {
        r = await node(path[i], r);
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await node(r, path[i]);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    if (sn !== 0) { throw new Error("proof too short"); }
    return r;
  }

  async function signedBy(note, keyLines) {
    var split = note.indexOf("\n\n");
    var body = note.slice(0, split + 1);
    var lines = note.slice(split + 2).split("\n").filter(function (l) { return l; });
    for (var k = 0; k < keyLines.length; k++) {
      // name+hash+key: the key is base64 and may itself contain "+".
      var line = keyLines[k].trim(), a = line.indexOf("+"), z = line.indexOf("+", a + 1);
      if (a < 1 || z < 0) { continue; }
      var parts = [line.slice(0, a), line.slice(a + 1, z), line.slice(z + 1)];
      var raw = b64(parts[2]);
      if (raw[0] !== 1 || raw.length !== 33) { continue; }
      var key = await crypto.subtle.importKey("raw", raw.slice(1), { name: "Ed25519" }, false, ["verify"]);
      for (var s = 0; s < lines.length; s++) {
        var m = /^\u2014 (\S+) (\S+)$/.exec(lines[s]);
        if (!m || m[1] !== parts[0]) { continue; }
        var blob = b64(m[2]);
        if (!same(blob.slice(0, 4), bytes(parts[1]))) { continue; }
        if (await crypto.subtle.verify({ name: "Ed25519" }, key, blob.slice(4), new TextEncoder().encode(body))) {
          return body;
        }
      }
    }
    return null;
  }

  async function check() {
    var proof = await (await fetch(box.dataset.proof, { credentials: "same-origin" })).json();
    var keys = (await (await fetch(box.dataset.keys)).text()).split("\n").filter(function (l) { return l; });
    var leafHash = bytes(proof.leaf_hash);
    if (proof.leaf !== null) {
      var computed = await sha256(join([new Uint8Array([0]), new TextEncoder().encode(proof.leaf)]));
      if (!same(computed, leafHash)) { return false; }
    }
    var body = await signedBy(proof.checkpoint, keys);
    if (body === null) { return false; }
    var head = body.split("\n");
    if (Number(head[1]) !== proof.tree_size) { return false; }
    var root = await rootFrom(proof.leaf_index, proof.tree_size, leafHash, proof.proof.map(bytes));
    return same(root, b64(head[2]));
  }

  button.addEventListener("click", function () {
    out.className = "";
    out.textContent = box.dataset.checking;
    check().then(function (ok) {
      out.className = ok ? "ok" : "bad";
      out.textContent = ok ? box.dataset.ok : box.dataset.bad;
    }, function () {
      out.className = "bad";
      out.textContent = box.dataset.bad;
    });
  });
})();
