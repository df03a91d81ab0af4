// The resident's report page: find the proof of work the server asks for (a nonce with
// SHA-256(challenge + ":" + nonce) starting with `bits` zero bits, docs/residents.md), scale
// photos above 1.5 MB to a 1920 px JPEG, and send the form to the public report API. On
// success the browser goes to the tracking page; a refusal is shown in the page's language
// (the messages are the form's data-msg-* attributes, from the catalogue).
(function () {
  "use strict";
  var LIMIT = 1.5 * 1024 * 1024;
  var MAX_SIDE = 1920;
  var CHUNK = 4096; // hashes between yields to the page, so typing stays smooth

  var K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
  ]);
  var W = new Uint32Array(64);

  // SHA-256 of an ASCII string (the challenge and nonce are ASCII): the eight digest words.
  function sha256(text) {
    var n = text.length;
    var blocks = ((n + 9 + 63) >> 6);
    var words = new Uint32Array(blocks * 16);
    for (var i = 0; i < n; i++) { words[i >> 2] |= text.charCodeAt(i) << (24 - (i & 3) * 8); }
    words[n >> 2] |= 0x80 << (24 - (n & 3) * 8);
    words[blocks * 16 - 1] = n * 8;
    var h0 = 0x6a09e667, h1 = 0xbb67ae85, h2 = 0x3c6ef372, h3 = 0xa54ff53a;
    var h4 = 0x510e527f, h5 = 0x9b05688c, h6 = 0x1f83d9ab, h7 = 0x5be0cd19;
    for (var b = 0; b < blocks; b++) {
      for (var t = 0; t < 16; t++) { W[t] = words[b * 16 + t]; }
      for (t = 16; t < 64; t++) {
        var x = W[t - 15], y = W[t - 2];
        var s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        var s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        W[t] = (W[t - 16] + s0 + W[t - 7] + s1) | 0;
      }
      var a = h0, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7, bb = h1;
      for (t = 0; t < 64; t++) {
        var S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        var ch = (e & f) ^ (~e & g);
        var t1 = (h + S1 + ch + K[t] + W[t]) | 0;
        var S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        var maj = (a & bb) ^ (a & c) ^ (bb & c);
        var t2 = (S0 + maj) | 0;
        h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = bb; bb = a; a = (t1 + t2) | 0;
      }
      h0 = (h0 + a) | 0; h1 = (h1 + bb) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
    }
    return [h0, h1, h2, h3, h4, h5, h6, h7];
  }

  function leadingZeroBits(digest) {
    var bits = 0;
    for (var i = 0; i < digest.length; i++) {
      if (digest[i] === 0) { bits += 32; continue; }
      return bits + Math.clz32(digest[i]);
    }
    return bits;
  }

  // Find the nonce in slices, yielding between them; resolves with the nonce (base 36).
  function solve(challenge, bits) {
    var prefix = challenge + ":";
    var n = 0;
    return new Promise(function (resolve) {
      function slice() {
        for (var i = 0; i < CHUNK; i++, n++) {
          var nonce = n.toString(36);
          if (leadingZeroBits(sha256(prefix + nonce)) >= bits) { resolve(nonce); return; }
        }
        setTimeout(slice, 0);
      }
      slice();
    });
  }

  function scaled(file) {
    if (file.size <= LIMIT || !window.createImageBitmap) { return Promise.resolve(file); }
    return createImageBitmap(file).then(function (bitmap) {
      var scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
      var canvas = document.createElement("canvas");
      canvas.width = Math.round(bitmap.width * scale);
      canvas.height = Math.round(bitmap.height * scale);
      canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      return new Promise(function (resolve) {
        canvas.toBlob(function (blob) { resolve(blob || file); }, "image/jpeg", 0.85);
      });
    }).catch(function () { return file; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("report");
    if (!form) { return; }
    var status = document.getElementById("status");
    var button = document.getElementById("send");
    var challengeField = form.querySelector("input[name=challenge]");
    var nonceField = form.querySelector("input[name=nonce]");
    var photosField = form.querySelector("input[name=photos]");
    var maxPhotos = parseInt(form.dataset.maxPhotos, 10) || 0;
    // Start solving at once: the work is done while the resident types.
    var proof = solve(challengeField.value, parseInt(challengeField.dataset.bits, 10));

    function say(text, bad) {
      status.textContent = text;
      status.className = bad ? "status notice" : "status";
    }

    function freshChallenge() {
      return fetch(form.dataset.challengeUrl, { credentials: "omit" }).then(function (r) {
        if (!r.ok) { throw r; }
        return r.json();
      }).then(function (c) {
        challengeField.value = c.challenge;
        challengeField.dataset.bits = String(c.bits);
        proof = solve(c.challenge, c.bits);
      });
    }

    function send(retried) {
      var files = photosField && photosField.files ? Array.prototype.slice.call(photosField.files) : [];
      if (files.length > maxPhotos) { say(form.dataset.msgTooManyPhotos, true); return Promise.resolve(); }
      say(form.dataset.msgWorking, false);
      return Promise.all([proof, Promise.all(files.map(scaled))]).then(function (done) {
        nonceField.value = done[0];
        var data = new FormData(form);
        data.delete("photos");
        done[1].forEach(function (blob, i) { data.append("photos", blob, "photo-" + i + ".jpg"); });
        say(form.dataset.msgSending, false);
        return fetch(form.action, { method: "POST", body: data, credentials: "omit" });
      }).then(function (r) {
        if (r.status === 201) {
          return r.json().then(function (created) { window.location.href = created.tracking_path; });
        }
        // A challenge spent or expired (403 proof, 409 replay): one more try with a new one.
        if ((r.status === 403 || r.status === 409) && !retried) {
          return freshChallenge().then(function () { return send(true); });
        }
        say(form.dataset["msg-" + r.status] || form.dataset.msgOther, true);
        button.disabled = false;
      }).catch(function () {
        say(form.dataset.msgOther, true);
        button.disabled = false;
      });
    }

    form.addEventListener("submit", function (evt) {
      evt.preventDefault();
      if (button.disabled) { return; }
      button.disabled = true;
      send(false);
    });
  });
})();
