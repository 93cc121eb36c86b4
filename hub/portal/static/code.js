// A QR code on the invite letter carries the access code after "#", which never reaches
// the server; fill it in for the client. Without JavaScript the client types it.
(function () {
  var code = decodeURIComponent(window.location.hash.replace(/^#/, ""));
  var field = document.getElementById("code");
  if (field && /^[0-9A-Za-z-]{12,20}$/.test(code)) {
    field.value = code;
    history.replaceState(null, "", window.location.pathname);
    var born = document.getElementById("birth_date");
    if (born) { born.focus(); }
  }
})();
