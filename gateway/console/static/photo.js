// Phone photos are often larger than a ticket takes (5 MiB) and slow over mobile data: a
// photo above 1.5 MB is scaled to at most 1920 px on its long side and sent as a JPEG. Without
// this script (or createImageBitmap) the form posts the file as it is.
(function () {
  "use strict";
  var LIMIT = 1.5 * 1024 * 1024;
  var MAX_SIDE = 1920;

  function send(form, blob) {
    var data = new FormData(form);
    data.set("file", blob, "photo.jpg");
    fetch(form.action, { method: "POST", body: data, credentials: "same-origin" }).then(function (r) {
      if (r.redirected) { window.location.href = r.url; return; }
      var sep = window.location.search ? "&" : "?";
      window.location.href = window.location.pathname + sep + "notice=notice.bad_photo";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var forms = document.querySelectorAll("form[data-photo]");
    for (var i = 0; i < forms.length; i++) {
      forms[i].addEventListener("submit", function (evt) {
        var form = evt.currentTarget;
        var input = form.querySelector("input[type=file]");
        var file = input && input.files && input.files[0];
        if (!file || file.size <= LIMIT || !window.createImageBitmap) { return; }
        evt.preventDefault();
        createImageBitmap(file).then(function (bitmap) {
          var scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
          var canvas = document.createElement("canvas");
          canvas.width = Math.round(bitmap.width * scale);
          canvas.height = Math.round(bitmap.height * scale);
          canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
          canvas.toBlob(function (blob) { send(form, blob); }, "image/jpeg", 0.85);
        }).catch(function () { form.submit(); });
      });
    }
  });
})();
